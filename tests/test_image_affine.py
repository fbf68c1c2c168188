"""Image and Affine: spectralign's semantics, checked against NumPy."""
from __future__ import annotations

import numpy as np
import pytest

import swim_oracle as oracle
from spectralign_fast import Affine, Image


@pytest.fixture
def photo(camera):
    return Image(camera)


def test_image_conversions():
    u8 = np.array([[0, 255], [51, 102]], np.uint8)
    img = Image(u8)
    assert img.dtype == np.float32 and isinstance(img, Image)
    np.testing.assert_allclose(img, u8 / 255.0, rtol=1e-6)
    np.testing.assert_allclose(Image(np.array([[0, 65535]], np.uint16)), [[0, 1]])
    rgb = np.zeros((4, 5, 3), np.uint8)
    rgb[..., 0] = 255
    np.testing.assert_allclose(Image(rgb), np.full((4, 5), 1 / 3), rtol=1e-6)
    rgba = np.dstack([rgb, np.full((4, 5), 7, np.uint8)])
    np.testing.assert_allclose(Image(rgba), np.full((4, 5), 1 / 3), rtol=1e-6)  # alpha dropped
    f64 = np.arange(6.0).reshape(2, 3)
    np.testing.assert_array_equal(Image(f64), f64.astype(np.float32))
    # float32 C-ordered input is viewed, never copied or modified
    f32 = np.ones((3, 3), np.float32)
    assert np.shares_memory(Image(f32), f32)


@pytest.mark.parametrize("bad, exc", [
    (np.zeros((0, 3)), ValueError),
    (np.zeros(5), ValueError),
    (np.zeros((2, 2, 2, 2)), ValueError),
    (np.zeros((3, 3), complex), TypeError),
    (np.array([["a"]], object), TypeError),
    (np.zeros((4, 4, 7)), ValueError),
])
def test_image_rejects_bad_data(bad, exc):
    with pytest.raises(exc):
        Image(bad)


def test_straightwindow_matches_bilinear_numpy(photo):
    for xy, size in [((200.25, 300.5), 64), ((256, 256), (40, 31)), ((5.3, 500.8), 32)]:
        win = photo.straightwindow(xy, size)
        w, h = (size, size) if np.ndim(size) == 0 else size
        ref = oracle.bilinear_window(np.asarray(photo, np.float64), xy[0], xy[1], w, h)
        assert win.shape == (h, w)
        np.testing.assert_allclose(win, ref, atol=2e-6)
    # spectralign's keyword name still works
    np.testing.assert_array_equal(photo.straightwindow((100, 100), siz=16),
                                  photo.straightwindow((100, 100), 16))
    # default centre and explicit border
    c = photo.straightwindow(size=8)
    np.testing.assert_allclose(c, np.asarray(photo)[252:260, 252:260])
    outside = photo.straightwindow((-100, -100), 16, border=0.25)
    assert np.all(outside == 0.25)


def test_transformedwindow(photo):
    ident = photo.transformedwindow((200.5, 180.25), None, 32)
    np.testing.assert_allclose(ident, photo.straightwindow((200.5, 180.25), 32), atol=1e-6)
    rot = Affine.rotator(np.pi / 2)
    win = photo.transformedwindow((256, 256), rot, 16)
    # window pixel (j, i) shows image point R (j - 8, i - 8) + (256, 256)
    a = np.asarray(photo)
    for j, i in [(0, 0), (3, 10), (15, 15)]:
        x, y = rot * np.array([j - 8.0, i - 8.0]) + 256
        assert win[i, j] == pytest.approx(a[int(round(y)), int(round(x))], abs=1e-5)
    with pytest.raises(ValueError):
        photo.transformedwindow((256, 256), np.ones(3), 16)


def test_apodized_matches_spectralign_profile(photo):
    win = photo.straightwindow((300, 300), (48, 40))
    apo = win.apodized()
    assert apo.apo and not win.apo
    prof = oracle.apodization_profile(40)[:, None] * oracle.apodization_profile(48)[None, :]
    g = float(np.asarray(win, np.float64).mean())
    np.testing.assert_allclose(apo, win * prof + (1 - prof) * g, atol=1e-6)
    assert apo.apodized() is apo  # already apodized
    np.testing.assert_allclose(win.apodized(gray=0.5), win * prof + (1 - prof) * 0.5, atol=1e-6)


def test_scaled_stretched_roi(photo):
    s = photo.scaled(3)
    a = np.asarray(photo, np.float64)
    assert s.shape == (170, 170)
    assert s[1, 2] == pytest.approx(a[3:6, 6:9].mean(), abs=1e-6)
    st = photo.stretched(1.0)
    assert st.min() == 0 and st.max() == 1
    assert np.mean(st == 0) >= 0.009 and np.mean(st == 1) >= 0.009
    assert np.all(Image(np.ones((4, 4))).stretched() == 0)
    r = photo.roi((10, 20, 30, 40))
    np.testing.assert_array_equal(r, a[20:60, 10:40].astype(np.float32))
    with pytest.raises(ValueError, match="does not fit"):
        photo.roi((500, 0, 30, 40))
    with pytest.raises(ValueError):
        photo.scaled(0)
    with pytest.raises(ValueError):
        photo.scaled(1000)


@pytest.mark.parametrize("suffix", [".tif", ".png"])
def test_save_load_roundtrip_is_atomic(photo, tmp_path, suffix):
    path = tmp_path / f"out{suffix}"
    photo.save(path)
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary left behind
    back = Image(path)
    tol = 0 if suffix == ".tif" else 1 / 255
    np.testing.assert_allclose(back, photo, atol=tol + 1e-6)
    assert Image.load(path).shape == photo.shape


def test_failed_write_leaves_nothing(photo, tmp_path):
    with pytest.raises(ValueError, match="unsupported"):
        photo.save(tmp_path / "x.xyz")
    with pytest.raises(FileNotFoundError):
        photo.save(tmp_path / "missing" / "x.tif")
    assert list(tmp_path.iterdir()) == []


def test_read_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        Image(tmp_path / "nope.png")
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png")
    with pytest.raises(ValueError, match="cannot read"):
        Image(bad)


def test_affine_algebra():
    A = Affine([[1.1, 0.2, 5], [-0.1, 0.9, -3]])
    B = Affine.rotator(0.3, (10, 20))
    p = np.array([3.0, 4.0])
    np.testing.assert_allclose((A @ B) * p, A * (B * p))
    np.testing.assert_allclose(A.inverse() * (A * p), p)
    pts = np.array([[1.0, 2, 3], [4, 5, 6]])
    np.testing.assert_allclose(A * pts, np.column_stack([A * pts[:, k] for k in range(3)]))
    C = Affine(A)
    C.invert()
    np.testing.assert_allclose(C @ A, Affine(), atol=1e-12)
    C @= A
    np.testing.assert_allclose(C, Affine(), atol=1e-12)
    assert B.angle() == pytest.approx(0.3) and B.angle(refine=True) == pytest.approx(0.3)
    np.testing.assert_allclose(B * np.array([10.0, 20.0]), [10, 20])
    np.testing.assert_allclose(B.centerofrotation(), [10, 20])
    S = Affine.scaler(2.0, (1, 1))
    assert S.magnification() == pytest.approx(2.0)
    np.testing.assert_allclose(S * np.array([1.0, 1.0]), [1, 1])
    T = Affine.translator((2, -3))
    np.testing.assert_allclose(T.translation(), [2, -3])
    np.testing.assert_allclose(T.shifted((1, 1)).translation(), [3, -2])
    np.testing.assert_allclose(T.translation(), [2, -3])  # shifted() copies
    assert "Affine" in repr(A)
    # 3x3 homogeneous input
    np.testing.assert_array_equal(Affine(np.vstack([A, [0, 0, 1]])), A)
    # magnification of a reflection is finite, not NaN
    assert Affine([[-1, 0, 0], [0, 1, 0]]).magnification() == pytest.approx(1.0)


def test_affine_bad_input():
    with pytest.raises(ValueError, match="2x3"):
        Affine(np.eye(2))
    with pytest.raises(ValueError, match="finite"):
        Affine([[1, 0, np.nan], [0, 1, 0]])
    with pytest.raises(ValueError, match="last row"):
        Affine([[1, 0, 0], [0, 1, 0], [1, 1, 1]])
    with pytest.raises(ValueError, match="singular"):
        Affine([[1, 2, 0], [2, 4, 0]]).inverse()
    with pytest.raises(ValueError, match="centre of rotation"):
        Affine.translator((1, 2)).centerofrotation()
    with pytest.raises(ValueError, match="shape"):
        Affine() * np.ones(3)


def test_affine_apply_matches_inverse_sampling(photo):
    A = Affine.rotator(0.05, (256, 256)).shifted((3.5, -2.25))
    out = A.apply(photo)
    assert out.shape == photo.shape and out.dtype == np.float32
    a = np.asarray(photo, np.float64)
    inv = A.inverse()
    for x, y in [(100, 120), (300, 200), (256, 400)]:
        sx, sy = inv * np.array([x, y], float)
        ref = oracle.bilinear_window(a, sx + 0.5, sy + 0.5, 1, 1)[0, 0]
        assert out[y, x] == pytest.approx(ref, abs=1e-5)
    part = A.apply(photo, (100, 50, 64, 32))
    np.testing.assert_allclose(part, out[50:82, 100:164], atol=1e-6)
    assert A.apply(photo, (5000, 5000, 4, 4)).max() == 0  # outside: 0
