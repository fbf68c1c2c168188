// Ctrl-C during long core calls: the poll that core/interrupt.hpp asks, and
// the translation of Interrupted into the KeyboardInterrupt (or whatever the
// signal handler raised).
//
// Python runs signal handlers on its main thread only, when that thread holds
// the GIL. Core calls release the GIL for their work; the thread that made
// the call asks the poll between work items (at most every 50 ms). On the
// main thread the poll takes the GIL for a moment and runs
// PyErr_CheckSignals(): when a handler raised, the exception is kept for this
// thread, the core unwinds (Interrupted), and the translator below restores
// it. Other threads (Dask workers, thread pools) never take the GIL here.
#include "pybind.hpp"
#include "spectralign_fast/core/interrupt.hpp"

namespace spectralign_fast::bindings {

namespace {

unsigned long g_main_thread = 0;

// The exception raised by a signal handler, until it is restored (this thread's).
struct Pending {
    PyObject* type = nullptr;
    PyObject* value = nullptr;
    PyObject* traceback = nullptr;
};
thread_local Pending t_pending;

bool poll_python() {
    if (PyThread_get_thread_ident() != g_main_thread || !Py_IsInitialized()) return false;
    py::gil_scoped_acquire gil;
    if (PyErr_CheckSignals() == 0) return false;
    Py_XDECREF(t_pending.type);
    Py_XDECREF(t_pending.value);
    Py_XDECREF(t_pending.traceback);
    PyErr_Fetch(&t_pending.type, &t_pending.value, &t_pending.traceback);
    return true;
}

}  // namespace

void install_interrupts() {
    g_main_thread = py::module_::import("threading").attr("main_thread")().attr("ident").cast<unsigned long>();
    py::register_exception_translator([](std::exception_ptr p) {
        try {
            if (p) std::rethrow_exception(p);
        } catch (const Interrupted&) {
            if (t_pending.type != nullptr) {
                PyErr_Restore(t_pending.type, t_pending.value, t_pending.traceback);
                t_pending = Pending{};
            } else {
                PyErr_SetNone(PyExc_KeyboardInterrupt);
            }
        }
    });
    set_interrupt_poll(poll_python);
}

}  // namespace spectralign_fast::bindings
