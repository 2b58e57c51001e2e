"""decode_image / images_to_tensor: the declared steps, torchvision parity, and every refusal before decoding."""

from __future__ import annotations

import numpy as np
import pytest

from modelfn.bundle.processing import IMAGENET_MEAN, IMAGENET_STD, ImageProcessing
from modelfn.errors import PayloadTooLarge, UnprocessableInput, UnsupportedMediaType
from modelfn.processing.images import decode_image, images_to_tensor
from tests.processing.images_util import encode, picture, png_header_only, reference

IMAGENET = ImageProcessing(input="x", size=[224, 224], resize=256, mean=list(IMAGENET_MEAN), std=list(IMAGENET_STD))
SMALL = ImageProcessing(input="x", size=[8, 8], resize=10)

SIZES = [(640, 480), (480, 640), (300, 257), (257, 300), (256, 256), (500, 333), (333, 500), (801, 599), (1023, 767)]


@pytest.mark.parametrize(("fmt", "sizes"), [("PNG", SIZES[:5]), ("JPEG", SIZES[5:])])
def test_parity_with_torchvision_resize_center_crop_to_tensor_normalize(fmt: str, sizes: list[tuple[int, int]]) -> None:
    # GIVEN pictures of odd and even, landscape and portrait sizes (9 in all, PNG and JPEG)
    for seed, (width, height) in enumerate(sizes):
        data = encode(picture(width, height, seed=seed), fmt, quality=90)
        # WHEN decoded with the ImageNet pipeline
        ours = decode_image(data, IMAGENET, field="image")
        # THEN the tensor matches torchvision's Resize(256)+CenterCrop(224)+ToTensor+Normalize semantics
        expected = reference(data, IMAGENET)
        assert ours.shape == (3, 224, 224) and ours.dtype == np.float32
        assert float(np.abs(ours - expected).max()) <= 1e-6, (width, height)


def test_layout_color_dtype_and_straight_resize() -> None:
    # GIVEN a 40x30 picture
    data = encode(picture(40, 30), "PNG")
    rgb = decode_image(data, ImageProcessing(input="x", size=[6, 5], layout="NHWC"), field="image")
    bgr = decode_image(data, ImageProcessing(input="x", size=[6, 5], layout="NHWC", color="BGR"), field="image")
    gray = decode_image(data, ImageProcessing(input="x", size=[6, 5], color="L"), field="image")
    raw = decode_image(data, ImageProcessing(input="x", size=[6, 5], dtype="uint8", scale=1, layout="NHWC"), field="i")
    # THEN each takes its declared shape and dtype, resized straight to [height, width] without a crop
    assert rgb.shape == (6, 5, 3) and gray.shape == (1, 6, 5) and raw.dtype == np.uint8
    np.testing.assert_array_equal(bgr, rgb[:, :, ::-1])
    np.testing.assert_allclose(rgb, raw.astype(np.float32) / 255, atol=1e-7)
    assert 0 <= float(rgb.min()) and float(rgb.max()) <= 1


def test_exif_orientation_is_applied() -> None:
    from PIL import Image

    # GIVEN a 40x20 landscape picture whose EXIF says "rotate 90° clockwise" (orientation 6)
    image = picture(40, 20)
    exif = Image.Exif()
    exif[0x0112] = 6
    data = encode(image, "JPEG", exif=exif.tobytes(), quality=95)
    spec = ImageProcessing(input="x", size=[40, 20], layout="NHWC", dtype="uint8", scale=1)
    # WHEN decoded straight to 40 high x 20 wide
    ours = decode_image(data, spec, field="image")
    # THEN it is the upright (portrait) picture, not a squashed landscape one
    upright = np.asarray(image.transpose(Image.Transpose.ROTATE_270), dtype=np.float32)
    assert float(np.abs(ours.astype(np.float32) - upright).mean()) < 8


def test_batch_stacks_and_names_the_bad_image() -> None:
    # GIVEN two good images and a broken one
    good = encode(picture(20, 16), "PNG")
    batch = images_to_tensor([good, encode(picture(16, 20, seed=3), "JPEG")], SMALL, field="instances")
    assert batch.shape == (2, 3, 8, 8)
    # WHEN the second of a batch is truncated THEN the error names it
    with pytest.raises(UnprocessableInput) as caught:
        images_to_tensor([good, encode(picture(64, 64), "JPEG")[:300]], SMALL, field="instances")
    assert caught.value.field == "instances[1]"


def test_decompression_bomb_png_is_refused_before_decoding() -> None:
    # GIVEN a 20000x20000 PNG that is only a few dozen bytes
    bomb = png_header_only(20000, 20000)
    assert len(bomb) < 100
    # WHEN decoded THEN 413, naming the pixel count (Pillow's own bomb check fires first at 400 Mpx)
    with pytest.raises(PayloadTooLarge) as caught:
        decode_image(bomb, IMAGENET, field="image")
    assert "400000000" in caught.value.message and caught.value.field == "image"
    # AND below Pillow's threshold the declared max_pixels refuses it from the header, naming the count
    with pytest.raises(PayloadTooLarge, match="5000x5000 = 25000000 pixels"):
        decode_image(png_header_only(5000, 5000), ImageProcessing(input="x", size=[8, 8], max_pixels=10**6), field="i")


def test_byte_limit_format_and_broken_files() -> None:
    png = encode(picture(32, 32), "PNG")
    # a body over max_bytes → 413 before opening
    with pytest.raises(PayloadTooLarge, match="over the image limit of 100"):
        decode_image(png, ImageProcessing(input="x", size=[8, 8], max_bytes=100), field="image")
    # a GIF when only JPEG/PNG/WEBP are declared → 415 naming the format
    with pytest.raises(UnsupportedMediaType, match="GIF"):
        decode_image(encode(picture(32, 32), "GIF"), SMALL, field="image")
    # PNG refused when the bundle declares JPEG only
    with pytest.raises(UnsupportedMediaType, match="PNG"):
        decode_image(png, ImageProcessing(input="x", size=[8, 8], formats=["JPEG"]), field="image")
    # not an image at all → 415
    with pytest.raises(UnsupportedMediaType, match="not a JPEG / PNG / WEBP image"):
        decode_image(b"hello, world", SMALL, field="image")
    # a truncated JPEG (header fine, data cut) → 422 naming the field
    with pytest.raises(UnprocessableInput) as caught:
        decode_image(encode(picture(64, 64), "JPEG")[:400], SMALL, field="data")
    assert caught.value.status_code == 422 and caught.value.field == "data"
    # a PNG signature over garbage → 422
    with pytest.raises(UnprocessableInput, match="not a decodable PNG"):
        decode_image(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, SMALL, field="image")


def test_transparent_palette_and_webp_decode_without_warnings() -> None:
    from PIL import Image

    # GIVEN a palette PNG with transparency (Pillow warns on some conversions; warnings are errors in tests)
    palette = picture(24, 24).convert("P")
    palette.info["transparency"] = 0
    webp = encode(picture(24, 24), "WEBP")
    # WHEN decoded THEN RGB tensors come out
    assert decode_image(encode(palette, "PNG", transparency=0), SMALL, field="image").shape == (3, 8, 8)
    assert decode_image(webp, SMALL, field="image").shape == (3, 8, 8)
    assert decode_image(encode(Image.new("RGBA", (12, 12), (10, 20, 30, 0)), "PNG"), SMALL, field="i").shape[0] == 3


def test_mutated_files_raise_only_typed_4xx_errors() -> None:
    import random

    from modelfn.errors import ModelfnError

    # GIVEN 600 randomly corrupted PNG, JPEG, WebP, GIF, BMP and TIFF files (bytes flipped, cut, deleted)
    spec = ImageProcessing(input="x", size=[8, 8], resize=10, formats=["JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF"])
    seeds = [encode(picture(32, 24), fmt) for fmt in ("PNG", "JPEG", "WEBP", "GIF", "BMP", "TIFF")]
    rng = random.Random(7)
    outcomes = {"ok": 0, "refused": 0}
    for _ in range(600):
        data = bytearray(rng.choice(seeds))
        for _ in range(rng.randint(1, 6)):
            at = rng.randrange(len(data))
            if rng.random() < 0.7:
                data[at] = rng.randrange(256)
            else:
                del data[at : at + rng.randint(1, 40)]
        # WHEN decoded THEN it is an array or a 4xx ModelfnError, never another exception (warnings raise in tests)
        try:
            decode_image(bytes(data) or b"x", spec, field="image")
            outcomes["ok"] += 1
        except ModelfnError as exc:
            assert 400 <= exc.status_code < 500 and exc.field == "image"
            outcomes["refused"] += 1
    assert outcomes["ok"] > 0 and outcomes["refused"] > 0


def test_without_pillow_the_error_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from modelfn.errors import ConfigError

    # GIVEN a deployment without Pillow (the images extra not installed)
    png = encode(picture(16, 16), "PNG")
    monkeypatch.setitem(sys.modules, "PIL", None)
    # WHEN an image bundle decodes an image THEN a typed error names the extra to install
    with pytest.raises(ConfigError, match=r"install modelfn\[images\]"):
        decode_image(png, SMALL, field="image")
