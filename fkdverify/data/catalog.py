"""What the datasets are: names, classes, file names, folder names, download mirrors and
the sha256 of every file we download. No I/O here."""

from __future__ import annotations

from ..words import DATASETS  # noqa: E402,F401  (defined once, in words.py)

SPLITS = ("test", "train")
CLASSES = {
    "mnist": tuple(str(i) for i in range(10)),
    "fashion-mnist": (
        "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
        "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
    ),
    "cifar10": (
        "airplane", "automobile", "bird", "cat", "deer",
        "dog", "frog", "horse", "ship", "truck",
    ),
}  # fmt: skip

# Sub-folders of a search location that may hold a dataset (our own layout first, then the
# layouts of torchvision, the official archives and Debian's dataset-* packages).
SUBDIRS = {
    "mnist": ("mnist", "MNIST", "MNIST/raw"),
    "fashion-mnist": ("fashion-mnist", "FashionMNIST", "FashionMNIST/raw", "fashion_mnist"),
    "cifar10": ("cifar10/cifar-10-batches-bin", "cifar-10-batches-bin", "cifar10",
                "cifar-10-batches-py", "cifar10/cifar-10-batches-py"),
}  # fmt: skip

IDX_KINDS = ("images-idx3-ubyte", "labels-idx1-ubyte")


def idx_prefix(split: str) -> str:
    return "t10k" if split == "test" else "train"


def idx_names(split: str, kind: str) -> list[str]:
    """Accepted file names of one IDX file: official .gz, unpacked, and the dotted variant."""
    pre = idx_prefix(split)
    return [f"{pre}-{kind}.gz", f"{pre}-{kind}", f"{pre}-{kind.replace('-idx', '.idx')}"]


def cifar_files(split: str) -> tuple[list[str], list[str]]:
    """(binary batch names, python batch names) of one CIFAR-10 split."""
    if split == "test":
        return ["test_batch.bin"], ["test_batch"]
    return [f"data_batch_{i}.bin" for i in range(1, 6)], [f"data_batch_{i}" for i in range(1, 6)]


# ------------------------------------------------------------------------------- downloads
# Default mirrors, tried in order. Override with $FKD_MIRROR_<NAME> (NAME upper-case with
# '-' -> '_', e.g. FKD_MIRROR_FASHION_MNIST; a comma-separated list of base URLs) or with one
# $FKD_MIRROR base URL under which the files lie as <base>/<name>/<file>.
MIRRORS = {
    "mnist": (
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "http://yann.lecun.com/exdb/mnist/",
    ),
    "fashion-mnist": ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
    "cifar10": ("https://www.cs.toronto.edu/~kriz/",),
}
CIFAR_TAR = "cifar-10-binary.tar.gz"
CIFAR_TAR_DIR = "cifar-10-batches-bin"  # the folder the official tar extracts to


def _sums(text: str) -> dict[str, str]:
    """`sha256sum` output -> {file name: sha256}."""
    return {f: d for d, f in (line.split() for line in text.strip().splitlines())}


# sha256 of each downloaded file: the published values (tensorflow-datasets' url_checksums
# and several independent public loaders list the same digests).
#  * MNIST: the t10k images/labels and train labels are byte-identical to the copies in
#    shared/data (whose .gz MD5s are torchvision's). The train images .gz is the official file
#    (torchvision MD5 f68b3c2dcbeaaa9fbdd348bbdeb94873; shared/data holds a re-gzipped copy).
#  * Fashion-MNIST: the t10k digests equal the files in shared/data, which match the official
#    MD5s (bef4ecab320f06d8554ea6380940ec79, bb300cfdad3c16e7a12a480ee83cd310); the train
#    digests are the published ones (official MD5 8d4fb7e6c68d591d4c3dfef9ec88bf0d images,
#    25c81989df183df01b3e8a0aad5dffbe labels).
#  * CIFAR-10: the published sha256 of the binary tar (official MD5
#    c32a1d4ab5d03f1284b67883e8d87530), and of each extracted batch (these also equal the
#    full CIFAR-10 batches in shared/data).
SHA256 = {
    "mnist": _sums("""
8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6  t10k-images-idx3-ubyte.gz
f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6  t10k-labels-idx1-ubyte.gz
440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609  train-images-idx3-ubyte.gz
3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c  train-labels-idx1-ubyte.gz
"""),
    "fashion-mnist": _sums("""
346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073  t10k-images-idx3-ubyte.gz
67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5  t10k-labels-idx1-ubyte.gz
3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84  train-images-idx3-ubyte.gz
a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845  train-labels-idx1-ubyte.gz
"""),
    "cifar10": _sums("""
c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd  cifar-10-binary.tar.gz
"""),
}
# the extracted members of the CIFAR-10 tar that we keep (under cifar-10-batches-bin/)
CIFAR_MEMBERS = _sums("""
cee916563c9f80d84e3cc88e17fdc0941787f1244f00a67874d45b261883ada5  data_batch_1.bin
a591ca11fa1708a91ee40f54b3da4784ccd871ecf2137de63f51ada8b3fa57ed  data_batch_2.bin
bbe8596564c0f86427f876058170b84dac6670ddf06d79402899d93ceea26f67  data_batch_3.bin
014e562d6e23c72197cc727519169a60359f5eccd8945ad5a09d710285ff4e48  data_batch_4.bin
755304fc0b379caeae8c14f0dac912fbc7d6cd469eb67a1029a08a39453a9add  data_batch_5.bin
8e2eb146ae340b09e24670f29cabc6326dba54da8789dab6768acf480273f65b  test_batch.bin
""")
# sizes in bytes of the official files: a download that grows past its size is cut off
SIZES = {
    "mnist": {"t10k-images-idx3-ubyte.gz": 1648877, "t10k-labels-idx1-ubyte.gz": 4542,
              "train-images-idx3-ubyte.gz": 9912422, "train-labels-idx1-ubyte.gz": 28881},
    "fashion-mnist": {"t10k-images-idx3-ubyte.gz": 4422102, "t10k-labels-idx1-ubyte.gz": 5148,
                      "train-images-idx3-ubyte.gz": 26421880,
                      "train-labels-idx1-ubyte.gz": 29515},
    "cifar10": {CIFAR_TAR: 170052171},
}  # fmt: skip
