#!/usr/bin/env python3
"""Deterministic, Pydio-Cells-like benchmark corpus for the cellar harness.

Python 3.11+, standard library only.  Everything is derived from --seed, so
two invocations with the same arguments produce byte-identical output
(contents *and* mtimes).

    gen_corpus.py folder  DIR  [--small] [--seed N]
        A Cells home folder: pydio.json, data/<bucket>/... (personal user
        folders, workspaces, thumbnails, versions), data/.minio.sys with
        ~16,000 tiny JSON files, logs/, services/ (bolt-like .db files).
        Full: ~29,000 files / ~1.56 GiB.  --small: ~3,000 files / ~150 MiB.

    gen_corpus.py mutate  DIR  [--small] [--seed N]
        Deterministic "next night" change set applied in place: 200 files
        added, 150 changed in place (same size, random offset), 100 deleted,
        1,000 touched (mtime only).  Divided by 10 for a small corpus
        (--small, or auto-detected when DIR holds fewer than 10,000 files).

    gen_corpus.py sqldump FILE [--small] [--night 1|2] [--seed N]
        mysqldump-like SQL text (~430 MiB full, ~40 MiB small).  Night 2 is
        night 1 with 1 % of rows updated (80 % of them among the newest 5 %),
        0.5 % rows appended and 0.2 % rows deleted, per table.

    gen_corpus.py stats   DIR
        Prints "<files> <bytes>" for a tree (regular files only).
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import random
import struct
import sys
import time

DEFAULT_SEED = 20240501
BASE_TIME = 1714528800  # 2024-05-01T02:00:00Z: "the night of the first backup"
DAY = 86400
KiB = 1024
MiB = 1024 * 1024
RAND_CHUNK = 8 * MiB  # random.randbytes() cannot do more than ~256 MiB at once

# --------------------------------------------------------------------------
# Text material
# --------------------------------------------------------------------------

_COMMON = """the of and to in a is that for it as was with be by on not he this are
or his from at which but have an they you were her she there one all we their
been has when who will more no if out so said what up its about into than them
can only other new some could time these two may then do first any my now such
like our over man me even most made after also did many before must through back
years where much your way well down should because each just those people how
too little state good very make world still own see men work long get here
between both life being under never day same another know while last might us
great old year off come since against go came right used take three please
thanks regards attached following next week monday tuesday friday morning
afternoon call discuss agreed latest version share folder access open close
check send sent received review confirm""".split()

_DOMAIN = """report budget invoice contract meeting project client server backup
storage cluster customer quarter revenue forecast deadline review draft proposal
schedule milestone release deployment database network security policy
compliance audit workspace folder document spreadsheet presentation agenda
minutes action item owner status pending approved rejected update migration
infrastructure ticket incident support team manager engineer design requirement
specification analysis summary payment supplier order delivery shipment
warehouse inventory training onboarding holiday expense travel hotel flight
conference webinar marketing campaign newsletter website analytics roadmap
feature bug regression performance latency throughput capacity renewal licence
pricing discount margin payroll recruitment candidate interview offer""".split()

_FIRST = """Alice Bob Carol Dave Erin Frank Grace Heidi Ivan Judy Mallory Oscar Peggy
Trent Victor Walter Olivia Liam Emma Noah Sophia Lucas Mia Louis Chloe Hugo Lea
Jules Manon Arthur Ines Paul Clara Adam Sarah Nathan Camille""".split()
_LAST = """Martin Bernard Dubois Thomas Robert Richard Petit Durand Leroy Moreau
Simon Laurent Lefebvre Michel Garcia David Bertrand Roux Vincent Fournier Smith
Johnson Williams Brown Jones Miller Davis Wilson Anderson Taylor Moore Jackson
White Harris Clark Lewis Walker Young King Wright Lopez Hill Scott Green""".split()

VOCAB = _COMMON + _DOMAIN
# Zipf-ish weights: common words first, so text compresses like real prose.
CUM_W = list(itertools.accumulate(1.0 / (i + 8) for i in range(len(VOCAB))))

USERS = ["admin", "alice", "bob", "carol", "dave", "erin", "frank", "grace",
         "heidi", "ivan", "judy", "oscar"]
WORKSPACES = ["Marketing", "Engineering", "Human Resources", "Finance", "Legal",
              "Sales", "Support", "Management"]
DOC_DIRS = ["Contracts", "Invoices", "Reports", "Projects", "Archive", "Drafts",
            "Meetings", "Templates", "Clients", "Suppliers", "Budget", "Planning",
            "Training", "Procedures", "Presentations", "Research", "Quotes",
            "Orders", "Minutes", "Specifications", "Audit", "Roadmap", "Misc",
            "2019", "2020", "2021", "2022", "2023", "2024", "Q1", "Q2", "Q3", "Q4",
            "Old", "To review", "Signed", "Internal", "External", "Partners"]
PHOTO_DIRS = ["Holidays", "Family", "Team event", "Office", "Trip", "Birthday",
              "Conference", "Product shots", "Wedding", "Garden", "Weekend",
              "Christmas", "Summer", "Mountains", "Sea"]
DOC_STEMS = ["Quarterly report", "Invoice", "Contract", "Meeting notes",
             "Budget", "Proposal", "Specification", "Presentation", "Roadmap",
             "Minutes", "Offer", "Purchase order", "Timesheet", "Expense report",
             "Project plan", "Risk register", "Audit findings", "Price list",
             "Training material", "Onboarding checklist", "Board deck",
             "Release notes", "Architecture", "Customer survey", "Forecast",
             "Statement of work", "NDA", "Letter", "CV", "Brochure"]
OFFICE_EXT = [("docx", 40), ("xlsx", 25), ("pptx", 10), ("pdf", 25)]
TEXT_EXT = [("txt", 35), ("md", 35), ("csv", 30)]

MIME = {
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    "pdf": "application/pdf", "txt": "text/plain", "md": "text/markdown",
    "csv": "text/csv", "jpg": "image/jpeg", "mp4": "video/mp4",
    "pydio": "application/octet-stream", "bin": "application/octet-stream",
}


def weighted(rng: random.Random, table):
    return rng.choices([t[0] for t in table], weights=[t[1] for t in table])[0]


def uuid(rng: random.Random) -> str:
    h = "%032x" % rng.getrandbits(128)
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{h[16:20]}-{h[20:32]}"


def hexstr(rng: random.Random, n: int) -> str:
    return "%0*x" % (n, rng.getrandbits(4 * n))


def person(rng: random.Random) -> str:
    return f"{rng.choice(_FIRST)} {rng.choice(_LAST)}"


def iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts))


def sentence(rng: random.Random) -> str:
    words = rng.choices(VOCAB, cum_weights=CUM_W, k=rng.randint(5, 17))
    r = rng.random()
    if r < 0.12:
        words.insert(rng.randrange(len(words)), str(rng.randint(2, 9999)))
    elif r < 0.18:
        words.insert(rng.randrange(len(words)), rng.choice(_FIRST))
    s = " ".join(words)
    return s[0].upper() + s[1:] + rng.choice("....?!")


def paragraph(rng: random.Random) -> str:
    return " ".join(sentence(rng) for _ in range(rng.randint(2, 7)))


def text_of_size(rng: random.Random, size: int, kind: str) -> bytes:
    """Compressible text (~3x with zstd) of exactly `size` bytes."""
    out: list[str] = []
    n = 0
    if kind == "csv":
        hdr = "date,name,reference,description,amount,currency,status\n"
        out.append(hdr)
        n = len(hdr)
        while n < size:
            line = (f"2023-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d},"
                    f"{person(rng)},REF-{rng.randint(1000, 99999)},"
                    f"{' '.join(rng.choices(VOCAB, cum_weights=CUM_W, k=rng.randint(2, 6)))},"
                    f"{rng.randint(1, 99999)}.{rng.randint(0, 99):02d},"
                    f"{rng.choice(('EUR', 'EUR', 'USD', 'GBP'))},"
                    f"{rng.choice(('paid', 'open', 'late', 'cancelled'))}\n")
            out.append(line)
            n += len(line)
    else:
        while n < size:
            r = rng.random()
            if kind == "md" and r < 0.15:
                s = "#" * rng.randint(1, 3) + " " + sentence(rng)[:-1] + "\n\n"
            elif kind == "md" and r < 0.35:
                s = "".join("- " + sentence(rng) + "\n" for _ in range(rng.randint(2, 6))) + "\n"
            else:
                s = paragraph(rng) + "\n\n"
            out.append(s)
            n += len(s)
    return "".join(out).encode()[:size]


# --------------------------------------------------------------------------
# Binary formats (mostly incompressible, tiny structured headers)
# --------------------------------------------------------------------------

def write_random(f, rng: random.Random, n: int) -> None:
    while n > 0:
        k = min(n, RAND_CHUNK)
        f.write(rng.randbytes(k))
        n -= k


ZIP_MEMBERS = {
    "docx": ["_rels/.rels", "docProps/core.xml", "docProps/app.xml",
             "word/document.xml", "word/styles.xml", "word/settings.xml",
             "word/fontTable.xml", "word/theme/theme1.xml", "word/media/image1.png",
             "word/media/image2.jpeg"],
    "xlsx": ["_rels/.rels", "docProps/core.xml", "docProps/app.xml",
             "xl/workbook.xml", "xl/styles.xml", "xl/sharedStrings.xml",
             "xl/worksheets/sheet1.xml", "xl/worksheets/sheet2.xml",
             "xl/theme/theme1.xml"],
    "pptx": ["_rels/.rels", "docProps/core.xml", "docProps/app.xml",
             "ppt/presentation.xml", "ppt/slides/slide1.xml", "ppt/slides/slide2.xml",
             "ppt/slides/slide3.xml", "ppt/media/image1.png", "ppt/media/image2.png",
             "ppt/theme/theme1.xml"],
}
CONTENT_TYPES = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
    '<Default Extension="xml" ContentType="application/xml"/>'
    '<Default Extension="png" ContentType="image/png"/><Default Extension="jpeg" ContentType="image/jpeg"/>'
    '<Override PartName="/docProps/core.xml" ContentType="application/vnd.openxmlformats-package.core-properties+xml"/>'
    '<Override PartName="/docProps/app.xml" ContentType="application/vnd.openxmlformats-officedocument.extended-properties+xml"/>'
    '</Types>')


def gen_zip(f, rng: random.Random, size: int, ext: str) -> None:
    """An OOXML-like zip: one stored XML member, the rest 'deflated' (random)."""
    names = [b"[Content_Types].xml"] + [m.encode() for m in ZIP_MEMBERS[ext]]
    ct = CONTENT_TYPES.encode()
    dtime, ddate = rng.randint(0, 0xBFFF), rng.randint(0x4A21, 0x5899)
    # Overhead: local headers (30+name), central entries (46+name), EOCD (22).
    overhead = sum(76 + len(n) for n in names) + 22 + len(ct)
    budget = max(0, size - overhead)
    weights = [rng.random() ** 2 + 0.01 for _ in names[1:]]
    big = max(range(len(weights)), key=weights.__getitem__)
    weights[big] += 3.0  # the document body / media dominates
    tot = sum(weights)
    sizes = [int(budget * w / tot) for w in weights]
    sizes[big] += budget - sum(sizes)
    central = []
    off = 0
    for i, name in enumerate(names):
        if i == 0:
            data_len, method = len(ct), 0
        else:
            data_len, method = sizes[i - 1], 8
        crc = rng.getrandbits(32)
        usize = data_len if method == 0 else data_len * rng.randint(2, 6)
        hdr = struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 6, method, dtime, ddate,
                          crc, data_len, usize & 0xFFFFFFFF, len(name), 0) + name
        f.write(hdr)
        if i == 0:
            f.write(ct)
        else:
            write_random(f, rng, data_len)
        central.append(struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 6, method,
                                   dtime, ddate, crc, data_len, usize & 0xFFFFFFFF,
                                   len(name), 0, 0, 0, 0, 0, off) + name)
        off += len(hdr) + data_len
    cd = b"".join(central)
    f.write(cd)
    f.write(struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(names), len(names),
                        len(cd), off, 0))


def gen_pdf(f, rng: random.Random, size: int) -> None:
    """PDF-like: text object dictionaries, random FlateDecode streams, xref."""
    head = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n"
    f.write(head)
    pos = len(head)
    offsets = []
    nstreams = max(1, min(60, size // (48 * KiB)))
    title = f"{rng.choice(DOC_STEMS)} {rng.randint(2018, 2024)}"
    tail_reserve = 40 + 20 * (2 * nstreams + 4) + 120
    remaining = max(0, size - pos - tail_reserve - nstreams * 260)
    obj = 1
    for s in range(nstreams):
        d = (f"{obj} 0 obj\n<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] "
             f"/Resources << /Font << /F1 4 0 R /F2 5 0 R >> /XObject << /Im{s} "
             f"{obj + 1} 0 R >> >> /Contents {obj + 1} 0 R >>\nendobj\n").encode()
        offsets.append(pos)
        f.write(d)
        pos += len(d)
        obj += 1
        ln = remaining // nstreams if s < nstreams - 1 else remaining - (remaining // nstreams) * (nstreams - 1)
        sh = f"{obj} 0 obj\n<< /Length {ln} /Filter /FlateDecode >>\nstream\n".encode()
        offsets.append(pos)
        f.write(sh)
        write_random(f, rng, ln)
        f.write(b"\nendstream\nendobj\n")
        pos += len(sh) + ln + 18
        obj += 1
    info = (f"{obj} 0 obj\n<< /Title ({title}) /Author ({person(rng)}) /Producer "
            f"(LibreOffice 7.5) /CreationDate (D:2023{rng.randint(1, 12):02d}"
            f"{rng.randint(1, 28):02d}120000Z) >>\nendobj\n").encode()
    offsets.append(pos)
    f.write(info)
    pos += len(info)
    xref = [f"xref\n0 {len(offsets) + 1}\n0000000000 65535 f \n"]
    xref += [f"{o:010d} 00000 n \n" for o in offsets]
    xref.append(f"trailer\n<< /Size {len(offsets) + 1} /Root 1 0 R /Info {obj} 0 R >>\n"
                f"startxref\n{pos}\n%%EOF\n")
    x = "".join(xref).encode()
    f.write(x)
    pos += len(x)
    if pos < size:  # pad with a trailing comment, as incremental saves do
        f.write(b"%" + rng.randbytes(size - pos - 1) if size - pos > 1 else b"\n")


CAMERAS = [("Canon", "Canon EOS 80D"), ("NIKON CORPORATION", "NIKON D7500"),
           ("Apple", "iPhone 13"), ("samsung", "SM-G991B"), ("SONY", "ILCE-7M3"),
           ("Google", "Pixel 7"), ("FUJIFILM", "X-T30")]


def gen_jpeg(f, rng: random.Random, size: int, thumb: bool = False) -> None:
    if thumb:
        hdr = (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
               b"\xff\xdb\x00\x43\x00" + rng.randbytes(64) +
               b"\xff\xc0\x00\x11\x08\x01\x00\x01\x00\x03\x01\x22\x00\x02\x11\x01\x03\x11\x01"
               b"\xff\xda\x00\x0c\x03\x01\x00\x02\x11\x03\x11\x00\x3f\x00")
    else:
        make, model = rng.choice(CAMERAS)
        exif = (b"Exif\x00\x00II*\x00\x08\x00\x00\x00" + make.encode() + b"\x00" +
                model.encode() + b"\x00" +
                f"2023:{rng.randint(1, 12):02d}:{rng.randint(1, 28):02d} "
                f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:00".encode() + b"\x00" +
                rng.randbytes(rng.randint(200, 600)))
        hdr = (b"\xff\xd8\xff\xe1" + struct.pack(">H", len(exif) + 2) + exif +
               b"\xff\xdb\x00\x84\x00" + rng.randbytes(130) +
               b"\xff\xc0\x00\x11\x08\x0b\xd0\x0f\xc0\x03\x01\x22\x00\x02\x11\x01\x03\x11\x01"
               b"\xff\xda\x00\x0c\x03\x01\x00\x02\x11\x03\x11\x00\x3f\x00")
    f.write(hdr)
    write_random(f, rng, max(0, size - len(hdr) - 2))
    f.write(b"\xff\xd9")


def gen_mp4(f, rng: random.Random, size: int) -> None:
    ftyp = struct.pack(">I4s4sI", 32, b"ftyp", b"isom", 512) + b"isomiso2avc1mp41"
    moov_body = rng.randbytes(rng.randint(20 * KiB, 60 * KiB))
    moov = struct.pack(">I4s", 8 + len(moov_body), b"moov") + moov_body
    f.write(ftyp)
    f.write(moov)
    n = max(0, size - len(ftyp) - len(moov) - 8)
    f.write(struct.pack(">I4s", (n + 8) & 0xFFFFFFFF, b"mdat"))
    write_random(f, rng, n)


def gen_boltdb(f, rng: random.Random, size: int) -> None:
    """bbolt-like: 4 KiB pages, a mix of free (zero), JSON leaf and binary pages."""
    page = 4096
    for _ in range(max(1, size // page)):
        r = rng.random()
        if r < 0.3:
            f.write(bytes(page))
        elif r < 0.7:
            parts = []
            n = 16
            while n < page:
                s = ('{"uuid":"%s","owner":"%s","type":"%s","ts":%d,"msg":"%s"}' % (
                    uuid(rng), rng.choice(USERS), rng.choice(("task", "job", "event", "node")),
                    BASE_TIME - rng.randint(0, 400 * DAY), sentence(rng)))
                parts.append(s)
                n += len(s)
            f.write(rng.randbytes(16) + "".join(parts).encode()[: page - 16])
        else:
            f.write(rng.randbytes(page))


def write_bytes(path: str, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)


# --------------------------------------------------------------------------
# Folder corpus
# --------------------------------------------------------------------------

class Plan:
    """Counts for the full corpus; --small divides counts by 10."""

    FULL = dict(folders=1450, office=4250, text=1950, photos=355, videos=6,
                thumbs=3450, versions=900, dups=575, minio=16000, logs=24,
                services=12)

    def __init__(self, small: bool):
        self.small = small
        s = 0.1 if small else 1.0
        self.n = {k: max(1, round(v * s)) for k, v in self.FULL.items()}
        if small:
            self.n["videos"] = 1
        self.video_range = (15 * MiB, 30 * MiB) if small else (20 * MiB, 80 * MiB)


def lognormal_size(rng, median, sigma, lo, hi):
    return int(min(hi, max(lo, math.exp(rng.gauss(math.log(median), sigma)))))


def past_mtime(rng) -> int:
    # skewed towards recent: most files touched in the last months
    return BASE_TIME - 3600 - int(3 * 365 * DAY * rng.random() ** 2.5)


class Entry:
    __slots__ = ("path", "kind", "size", "key", "mtime", "ext", "bucket_obj")

    def __init__(self, path, kind, size, key, mtime, ext, bucket_obj=True):
        self.path, self.kind, self.size, self.key = path, kind, size, key
        self.mtime, self.ext, self.bucket_obj = mtime, ext, bucket_obj


def unique_name(used: set, folder: str, name: str) -> str:
    stem, dot, ext = name.rpartition(".")
    cand, i = name, 1
    while (folder, cand) in used:
        i += 1
        cand = f"{stem} ({i}).{ext}" if dot else f"{name} ({i})"
    used.add((folder, cand))
    return cand


def doc_name(rng, ext) -> str:
    r = rng.random()
    stem = rng.choice(DOC_STEMS)
    if r < 0.4:
        return f"{stem} {rng.randint(2018, 2024)}-{rng.randint(1, 12):02d}.{ext}"
    if r < 0.7:
        return f"{stem} - {rng.choice(_LAST)}.{ext}"
    if r < 0.85:
        return f"{stem}_v{rng.randint(1, 9)}.{ext}"
    return f"{stem} {rng.choice(VOCAB)} {rng.randint(1, 999)}.{ext}"


def plan_folder(rng: random.Random, plan: Plan):
    n = plan.n
    entries: list[Entry] = []
    used: set = set()

    # ---- folder trees inside the structured buckets -------------------
    doc_folders: list[str] = []
    photo_folders: list[str] = []
    video_folders: list[str] = []
    all_folders: list[str] = []
    for u in USERS:
        base = f"data/personal/{u}"
        all_folders.append(base)
        for d in ("Documents", "Notes", "Shared", "Downloads"):
            doc_folders.append(f"{base}/{d}")
        photo_folders.append(f"{base}/Photos")
        all_folders += [f"{base}/{d}" for d in ("Documents", "Notes", "Shared", "Downloads", "Photos")]
    for u in USERS[: max(2, n["videos"])]:
        video_folders.append(f"data/personal/{u}/Videos")
        all_folders.append(video_folders[-1])
    for w in WORKSPACES:
        doc_folders.append(f"data/cellsdata/{w}")
        all_folders.append(doc_folders[-1])
    doc_folders.append("data/pydiods1/Common Files")
    all_folders.append(doc_folders[-1])
    all_folders += ["data/cellsdata", "data/pydiods1"]
    while len(all_folders) < n["folders"]:
        if rng.random() < 0.2:
            parent = rng.choice(photo_folders)
            name = (f"{rng.randint(2016, 2024)}" if parent.endswith("/Photos")
                    else f"{rng.randint(2016, 2024)}-{rng.randint(1, 12):02d} {rng.choice(PHOTO_DIRS)}")
            lst = photo_folders
        else:
            parent = rng.choice(doc_folders)
            name = rng.choice(DOC_DIRS)
            lst = doc_folders
        if parent.count("/") > 8:
            continue
        p = f"{parent}/{name}"
        if p in lst:
            continue
        lst.append(p)
        all_folders.append(p)
    for d in all_folders:
        entries.append(Entry(f"{d}/.pydio", "pydio", 36, f"pydio:{d}", past_mtime(rng), "pydio"))

    # Folder popularity: a few folders hold many files (like real trees).
    doc_w = list(itertools.accumulate(rng.random() ** 3 + 0.02 for _ in doc_folders))
    photo_w = list(itertools.accumulate(rng.random() ** 2 + 0.05 for _ in photo_folders))

    def place(folders, cum_weights, name):
        folder = rng.choices(folders, cum_weights=cum_weights)[0]
        return f"{folder}/{unique_name(used, folder, name)}"

    office, texts, photos = [], [], []
    for i in range(n["office"]):
        ext = weighted(rng, OFFICE_EXT)
        med = 48 * KiB if ext == "pdf" else 30 * KiB
        size = lognormal_size(rng, med, 1.25, 6 * KiB, 12 * MiB)
        e = Entry(place(doc_folders, doc_w, doc_name(rng, ext)), "office", size,
                  f"office:{i}", past_mtime(rng), ext)
        office.append(e)
    for i in range(n["text"]):
        ext = weighted(rng, TEXT_EXT)
        size = lognormal_size(rng, 5 * KiB, 1.0, 200, 400 * KiB)
        texts.append(Entry(place(doc_folders, doc_w, doc_name(rng, ext)), "text", size,
                           f"text:{i}", past_mtime(rng), ext))
    # Stratified draws for the big files keep the corpus total stable.
    strata = [(j + rng.random()) / n["photos"] for j in range(n["photos"])]
    rng.shuffle(strata)
    for i in range(n["photos"]):
        size = int(200 * KiB + (5 * MiB - 200 * KiB) * strata[i] ** 2)
        ts = past_mtime(rng)
        name = time.strftime("IMG_%Y%m%d_%H%M%S.jpg", time.gmtime(ts))
        photos.append(Entry(place(photo_folders, photo_w, name), "photo", size,
                            f"photo:{i}", ts, "jpg"))
    videos = []
    for i in range(n["videos"]):
        lo, hi = plan.video_range
        size = int(lo + (hi - lo) * (i + rng.random()) / n["videos"])
        ts = past_mtime(rng)
        folder = video_folders[i % len(video_folders)]
        name = time.strftime("VID_%Y%m%d_%H%M%S.mp4", time.gmtime(ts))
        videos.append(Entry(f"{folder}/{unique_name(used, folder, name)}", "video", size,
                            f"video:{i}", ts, "mp4"))
    thumbs = []
    for i in range(n["thumbs"]):
        size = rng.randint(5 * KiB, 30 * KiB)
        thumbs.append(Entry(f"data/thumbnails/{uuid(rng)}-{rng.choice((256, 512))}.jpg",
                            "thumb", size, f"thumb:{i}", past_mtime(rng), "jpg"))
    versions = []
    nodes = [uuid(rng) for _ in range(max(1, n["versions"] // 3))]
    for i in range(n["versions"]):
        ext = weighted(rng, OFFICE_EXT)
        size = lognormal_size(rng, 30 * KiB, 1.25, 6 * KiB, 12 * MiB)
        versions.append(Entry(f"data/versions/{nodes[i % len(nodes)]}/{uuid(rng)}", "office",
                              size, f"version:{i}", past_mtime(rng), ext))
    dups = []
    for i in range(n["dups"]):
        r = rng.random()
        src = rng.choice(office if r < 0.8 else texts if r < 0.95 else photos)
        name = src.path.rsplit("/", 1)[1]
        if rng.random() < 0.3:
            name = "Copy of " + name
        if src.kind == "photo":
            p = place(photo_folders, photo_w, name)
        else:
            p = place(doc_folders, doc_w, name)
        dups.append(Entry(p, src.kind, src.size, src.key, past_mtime(rng), src.ext))
    entries += office + texts + photos + videos + thumbs + versions + dups

    # ---- .minio.sys: one fs.json per bucket object + STS identities ----
    objs = [e for e in entries if e.bucket_obj]
    minio = [Entry("data/.minio.sys/format.json", "minio-format", 0, "mf", BASE_TIME - 900 * DAY, "json", False),
             Entry("data/.minio.sys/config/config.json", "minio-config", 0, "mc", BASE_TIME - 30 * DAY, "json", False)]
    for e in objs:
        rel = e.path[len("data/"):]
        minio.append(Entry(f"data/.minio.sys/buckets/{rel}/fs.json", "fsjson", 0,
                           f"fs:{e.key}:{e.path}", e.mtime, e.ext, False))
    i = 0
    while len(minio) < n["minio"]:
        ak = "".join(rng.choices("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", k=20))
        minio.append(Entry(f"data/.minio.sys/config/iam/sts/{ak[:2]}/{ak}/identity.json", "sts", 0,
                           f"sts:{i}", past_mtime(rng), "json", False))
        i += 1
    entries += minio

    # ---- config, logs, services ---------------------------------------
    entries.append(Entry("pydio.json", "config", 0, "config", BASE_TIME - 40 * DAY, "json", False))
    entries.append(Entry("version", "versionfile", 0, "version", BASE_TIME - 40 * DAY, "txt", False))
    for i in range(n["logs"]):
        if i == 0:
            p, size, ts = "logs/pydio.log", 9 * MiB, BASE_TIME - 60
        else:
            d = BASE_TIME - i * DAY
            p = "logs/" + time.strftime("pydio-%Y-%m-%dT%H-%M-%S.000.log", time.gmtime(d))
            size, ts = rng.randint(1 * MiB, 5 * MiB), d
        if plan.small:
            size //= 2
        entries.append(Entry(p, "log", size, f"log:{i}", ts, "log", False))
    svc = ["pydio.grpc.activity/activities.db", "pydio.grpc.chat/chat.db",
           "pydio.grpc.jobs/jobs.db", "pydio.grpc.tasks/tasks.db",
           "pydio.grpc.mailer/queue.db", "pydio.grpc.search/searchengine.bleve/store/root.bolt",
           "pydio.grpc.versions/versions.db", "pydio.grpc.broker/broker.db",
           "pydio.grpc.data.sync.personal/snapshot.db", "pydio.grpc.data.sync.cellsdata/snapshot.db",
           "pydio.grpc.data.sync.pydiods1/snapshot.db", "pydio.web.oauth/oauth.db"]
    for i in range(n["services"]):
        size = (16 * MiB if i == 0 else rng.randint(64 * KiB, 3 * MiB))
        if plan.small:
            size //= 4
        entries.append(Entry("services/" + svc[i % len(svc)], "bolt", size, f"bolt:{i}",
                             BASE_TIME - rng.randint(60, 2 * DAY), "db", False))
    return entries


def fsjson_text(rng: random.Random, e: Entry) -> bytes:
    meta = {"X-Amz-Meta-Pydio-Node-Uuid": uuid(rng),
            "content-type": MIME.get(e.ext, "application/octet-stream"),
            "etag": hexstr(rng, 32)}
    r = rng.random()
    if r < 0.35:
        meta["X-Amz-Meta-Pydio-Clear-Size"] = str(rng.randint(100, 9_999_999))
        meta["X-Amz-Meta-Pydio-Encryption-Key"] = hexstr(rng, rng.randint(32, 96))
    if r > 0.8:
        meta["X-Amz-Meta-Pydio-Content-Length"] = str(rng.randint(100, 9_999_999))
        meta["X-Amz-Meta-Pydio-Modified"] = iso(e.mtime) + "Z"
    parts = ",".join(f'"{k}":"{v}"' for k, v in meta.items())
    return ('{"version":"1.0.2","checksum":{"algorithm":"","blocksize":0,"hashes":null},'
            '"meta":{' + parts + "}}").encode()


def sts_text(rng: random.Random, e: Entry) -> bytes:
    ak = e.path.rsplit("/", 2)[1]
    tok = "".join(rng.choices("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_",
                              k=rng.randint(60, 300)))
    return ('{"version":1,"credentials":{"accessKey":"%s","secretKey":"%s","expiration":"%sZ",'
            '"sessionToken":"eyJhbGciOiJIUzUxMiIsInR5cCI6IkpXVCJ9.%s","status":"on",'
            '"parentUser":"%s"},"updatedAt":"%sZ"}' % (
                ak, hexstr(rng, 40), iso(e.mtime + 3600), tok, rng.choice(USERS),
                iso(e.mtime))).encode()


def config_text(rng: random.Random) -> bytes:
    cfg = {
        "version": "4.4.3",
        "defaults": {"url": "https://cells.example.org", "datasource": "pydiods1",
                     "update": {"channel": "stable"}},
        "databases": {"default": {"driver": "mysql",
                                  "dsn": "pydio:***@tcp(localhost:3306)/cells?parseTime=true"}},
        "services": {},
    }
    for i in range(140):
        name = f"pydio.grpc.{rng.choice(VOCAB)}{i}"
        cfg["services"][name] = {
            "enabled": rng.random() < 0.9,
            "storage": {"driver": rng.choice(("boltdb", "mysql", "bleve", "mongodb"))},
            "options": {w: rng.randint(1, 9999) for w in rng.sample(VOCAB, 4)},
            "description": sentence(rng),
        }
    return json.dumps(cfg, indent=2).encode()


LOG_LOGGERS = ["pydio.grpc.tasks", "pydio.gateway.proxy", "pydio.rest.tree",
               "pydio.grpc.data.sync.personal", "pydio.grpc.activity",
               "pydio.grpc.search", "pydio.web.oauth", "pydio.grpc.jobs",
               "pydio.gateway.data", "pydio.grpc.mailer"]


def log_text(rng: random.Random, size: int, end_ts: int) -> bytes:
    out, n = [], 0
    ts = end_ts - (size // 280) * 30  # ~280 B lines, one every ~30 s
    while n < size:
        ts += rng.random() * 60
        lvl = rng.choices(("info", "debug", "warn", "error"), weights=(70, 20, 7, 3))[0]
        ms = rng.randint(0, 999)
        s = ('{"level":"%s","ts":"%s.%03dZ","logger":"%s","msg":"%s","SpanUuid":"%s",'
             '"UserName":"%s","RemoteAddress":"10.0.%d.%d"}\n' % (
                 lvl, iso(ts), ms, rng.choice(LOG_LOGGERS), sentence(rng), uuid(rng),
                 rng.choice(USERS), rng.randint(0, 9), rng.randint(1, 254)))
        out.append(s)
        n += len(s)
    return "".join(out).encode()[:size]


def write_entry(root: str, e: Entry, seed: int) -> None:
    path = os.path.join(root, e.path)
    rng = random.Random(f"{seed}:{e.key}")
    k = e.kind
    if k == "office":
        with open(path, "wb") as f:
            (gen_pdf(f, rng, e.size) if e.ext == "pdf" else gen_zip(f, rng, e.size, e.ext))
    elif k == "text":
        write_bytes(path, text_of_size(rng, e.size, e.ext))
    elif k in ("photo", "thumb"):
        with open(path, "wb") as f:
            gen_jpeg(f, rng, e.size, thumb=(k == "thumb"))
    elif k == "video":
        with open(path, "wb") as f:
            gen_mp4(f, rng, e.size)
    elif k == "pydio":
        write_bytes(path, uuid(rng).encode())
    elif k == "fsjson":
        write_bytes(path, fsjson_text(rng, e))
    elif k == "sts":
        write_bytes(path, sts_text(rng, e))
    elif k == "minio-format":
        write_bytes(path, b'{"version":"1","format":"fs","id":"%s","fs":{"version":"2"}}' % uuid(rng).encode())
    elif k == "minio-config":
        write_bytes(path, ('{"version":"33","credential":{"accessKey":"%s","secretKey":"%s"},'
                           '"region":"us-east-1","browser":"off","worm":"off","domain":"",'
                           '"storageclass":{"standard":"","rrs":""},"cache":{"drives":[],'
                           '"expiry":90,"maxuse":80,"exclude":[]},"notify":{}}' % (
                               hexstr(rng, 20), hexstr(rng, 40))).encode())
    elif k == "config":
        write_bytes(path, config_text(rng))
    elif k == "versionfile":
        write_bytes(path, b"4.4.3\n")
    elif k == "log":
        write_bytes(path, log_text(rng, e.size, e.mtime))
    elif k == "bolt":
        with open(path, "wb") as f:
            gen_boltdb(f, rng, e.size)
    else:
        raise ValueError(k)
    os.utime(path, (e.mtime, e.mtime))


def cmd_folder(args) -> None:
    t0 = time.time()
    root = args.dir
    if os.path.exists(root) and os.listdir(root):
        sys.exit(f"gen_corpus: {root} exists and is not empty")
    plan = Plan(args.small)
    rng = random.Random(f"{args.seed}:plan:{int(args.small)}")
    entries = plan_folder(rng, plan)
    made = set()
    for e in entries:
        d = os.path.dirname(os.path.join(root, e.path))
        if d not in made:
            os.makedirs(d, exist_ok=True)
            made.add(d)
    for e in entries:
        write_entry(root, e, args.seed)
    files, total = tree_stats(root)
    print(f"gen_corpus: folder {root}: {files} files, {total / MiB:.1f} MiB "
          f"({total / (1 << 30):.3f} GiB) in {time.time() - t0:.1f}s", file=sys.stderr)


def tree_stats(root: str):
    files = total = 0
    for dp, dn, fn in os.walk(root):
        for name in fn:
            st = os.lstat(os.path.join(dp, name))
            files += 1
            total += st.st_size
    return files, total


def list_files(root: str):
    out = []
    for dp, dn, fn in os.walk(root):
        dn.sort()
        for name in sorted(fn):
            p = os.path.join(dp, name)
            out.append((os.path.relpath(p, root), os.lstat(p)))
    out.sort(key=lambda x: x[0])
    return out


# --------------------------------------------------------------------------
# Next-night mutation
# --------------------------------------------------------------------------

def classify(rel: str) -> str:
    if rel.startswith("data/.minio.sys/buckets/"):
        return "fsjson"
    if rel.startswith("data/.minio.sys/"):
        return "minio-other"
    if rel.startswith("logs/"):
        return "log"
    if rel.startswith("services/"):
        return "bolt"
    if rel.startswith("data/"):
        name = rel.rsplit("/", 1)[1]
        if name == ".pydio":
            return "pydio"
        if rel.startswith("data/thumbnails/"):
            return "thumb"
        if rel.startswith("data/versions/"):
            return "office"
        ext = name.rsplit(".", 1)[-1].lower()
        return {"docx": "office", "xlsx": "office", "pptx": "office", "pdf": "office",
                "txt": "text", "md": "text", "csv": "text", "jpg": "photo",
                "mp4": "video"}.get(ext, "other")
    return "other"


def fsjson_for(rel: str) -> str:
    return "data/.minio.sys/buckets/" + rel[len("data/"):] + "/fs.json"


def cmd_mutate(args) -> None:
    t0 = time.time()
    root = args.dir
    if not os.path.isfile(os.path.join(root, "pydio.json")):
        sys.exit(f"gen_corpus: {root} does not look like a generated corpus")
    files = list_files(root)
    small = args.small or len(files) < 10000
    s = 0.1 if small else 1.0
    n_add, n_chg, n_del, n_touch = (round(200 * s), round(150 * s), round(100 * s),
                                    round(1000 * s))
    rng = random.Random(f"{args.seed}:mutate:{len(files)}:{files[-1][0]}")
    max_mtime = max(int(st.st_mtime) for _, st in files)
    night = (max_mtime // DAY + 1) * DAY + 2 * 3600  # next 02:00 UTC

    def day_time():
        return night - rng.randint(60, 16 * 3600)

    by_kind: dict[str, list[str]] = {}
    for rel, st in files:
        by_kind.setdefault(classify(rel), []).append(rel)
    existing = {rel for rel, _ in files}
    sizes = {rel: st.st_size for rel, st in files}
    chosen: set[str] = set()

    def pick(kinds, k):
        pool = [r for kd in kinds for r in by_kind.get(kd, []) if r not in chosen]
        got = rng.sample(pool, min(k, len(pool)))
        chosen.update(got)
        return got

    # -- deletions: bucket objects together with their fs.json (pairs) ------
    dele = pick(("office", "text", "photo", "thumb"), n_del // 2)
    to_delete = []
    for rel in dele:
        to_delete.append(rel)
        fj = fsjson_for(rel)
        if fj in existing:
            to_delete.append(fj)
            chosen.add(fj)
    for rel in to_delete[:n_del]:
        os.remove(os.path.join(root, rel))
        d = os.path.dirname(os.path.join(root, rel))
        while d.startswith(os.path.join(root, "data/.minio.sys/buckets/")) and not os.listdir(d):
            os.rmdir(d)
            d = os.path.dirname(d)
    n_deleted = min(len(to_delete), n_del)

    # -- in-place changes (same size, random offset) -------------------------
    mix = [(("office",), 0.45), (("text",), 0.17), (("fsjson",), 0.27),
           (("log", "bolt"), 0.06), (("photo",), 0.05)]
    changed = []
    for kinds, frac in mix:
        changed += pick(kinds, round(n_chg * frac))
    changed = changed[:n_chg]
    changed += pick(("office",), max(0, n_chg - len(changed)))
    for rel in changed:
        p = os.path.join(root, rel)
        size = sizes[rel]
        kind = classify(rel)
        with open(p, "r+b") as f:
            if kind == "fsjson":
                data = f.read()
                i = data.find(b'"etag":"')
                if i >= 0:  # keep it valid JSON: rewrite the etag in place
                    f.seek(i + 8)
                    f.write(hexstr(rng, 32).encode())
            elif kind in ("text", "log"):
                ln = min(size, rng.randint(64, 16 * KiB))
                off = rng.randint(0, size - ln)
                f.seek(off)
                f.write(text_of_size(rng, ln, "txt"))
            elif kind == "photo":  # EXIF edit near the start
                ln = min(size, rng.randint(64, 512))
                f.seek(rng.randint(20, min(600, max(20, size - ln))))
                f.write(rng.randbytes(ln))
            else:
                ln = min(size, rng.randint(1 * KiB, 64 * KiB))
                off = rng.randint(0, size - ln)
                f.seek(off)
                f.write(rng.randbytes(ln))
        t = day_time()
        os.utime(p, (t, t))

    # -- additions: new bucket objects + their fs.json ---------------------
    doc_dirs = sorted({r.rsplit("/", 1)[0] for r in by_kind.get("office", []) + by_kind.get("text", [])
                       if r.startswith("data/personal/") or r.startswith("data/cellsdata/")})
    photo_dirs = sorted({r.rsplit("/", 1)[0] for r in by_kind.get("photo", [])}) or doc_dirs
    used = {os.path.split(r) for r in existing}
    added = []
    n_obj = n_add // 2
    for i in range(n_obj):
        r = rng.random()
        t = day_time()
        if r < 0.5:
            ext = weighted(rng, OFFICE_EXT)
            size = lognormal_size(rng, 30 * KiB, 1.25, 6 * KiB, 12 * MiB)
            folder = rng.choice(doc_dirs)
            e = Entry(f"{folder}/{unique_name(used, folder, doc_name(rng, ext))}", "office", size,
                      f"night:{t}:{i}", t, ext)
        elif r < 0.7:
            ext = weighted(rng, TEXT_EXT)
            size = lognormal_size(rng, 5 * KiB, 1.0, 200, 400 * KiB)
            folder = rng.choice(doc_dirs)
            e = Entry(f"{folder}/{unique_name(used, folder, doc_name(rng, ext))}", "text", size,
                      f"night:{t}:{i}", t, ext)
        elif r < 0.85:
            size = int(200 * KiB + (5 * MiB - 200 * KiB) * rng.random() ** 2)
            folder = rng.choice(photo_dirs)
            name = time.strftime("IMG_%Y%m%d_%H%M%S.jpg", time.gmtime(t))
            e = Entry(f"{folder}/{unique_name(used, folder, name)}", "photo", size,
                      f"night:{t}:{i}", t, "jpg")
        else:
            e = Entry(f"data/thumbnails/{uuid(rng)}-256.jpg", "thumb", rng.randint(5 * KiB, 30 * KiB),
                      f"night:{t}:{i}", t, "jpg")
        added.append(e)
        added.append(Entry(fsjson_for(e.path), "fsjson", 0, f"fs:{e.key}", t, e.ext, False))
    while len(added) < n_add:  # odd n_add: one extra STS identity
        ak = "".join(rng.choices("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", k=20))
        added.append(Entry(f"data/.minio.sys/config/iam/sts/{ak[:2]}/{ak}/identity.json", "sts",
                           0, f"sts-night:{ak}", day_time(), "json", False))
    for e in added:
        os.makedirs(os.path.dirname(os.path.join(root, e.path)), exist_ok=True)
        write_entry(root, e, args.seed)

    # -- touches (mtime only) ----------------------------------------------
    pool = sorted(existing - chosen)
    touched = rng.sample(pool, min(n_touch, len(pool)))
    for rel in touched:
        t = day_time()
        os.utime(os.path.join(root, rel), (t, t))

    print(f"gen_corpus: mutate {root} ({'small' if small else 'full'}): {len(added)} added, "
          f"{len(changed)} changed, {n_deleted} deleted, {len(touched)} touched "
          f"in {time.time() - t0:.1f}s", file=sys.stderr)


# --------------------------------------------------------------------------
# SQL dump
# --------------------------------------------------------------------------

SQL_LINE = 1024 * 1024 - 2048  # extended INSERT statements of ~1 MiB (net_buffer_length)

_ESC = str.maketrans({"\\": "\\\\", "'": "\\'", '"': '\\"', "\n": "\\n", "\r": "\\r", "\0": "\\0"})


def q(s: str) -> str:
    return "'" + s.translate(_ESC) + "'"


class Table:
    name = ""
    create = ""
    full_rows = 0
    step = 60  # seconds between consecutive ids' creation times

    def row(self, rng, i, ts):  # -> list of SQL literals
        raise NotImplementedError

    def update(self, vals, rng, ts):  # modify a row in place (night 2)
        raise NotImplementedError


class ActivityLog(Table):
    name = "activity_log"
    full_rows = 296_000
    step = 110
    create = """CREATE TABLE `activity_log` (
  `id` bigint unsigned NOT NULL AUTO_INCREMENT,
  `uuid` varchar(36) NOT NULL,
  `owner_id` varchar(128) NOT NULL,
  `object_id` varchar(128) NOT NULL,
  `activity_type` varchar(32) NOT NULL,
  `payload` longtext NOT NULL,
  `status` varchar(16) NOT NULL DEFAULT 'new',
  `created_at` datetime NOT NULL,
  PRIMARY KEY (`id`),
  KEY `idx_owner` (`owner_id`,`created_at`),
  KEY `idx_object` (`object_id`)
) ENGINE=InnoDB AUTO_INCREMENT={ai} DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_0900_ai_ci;"""

    def row(self, rng, i, ts):
        u = rng.choice(USERS)
        obj = uuid(rng)
        typ = rng.choice(("Create", "Update", "Update", "Read", "Delete", "Move", "Share"))
        path = f"personal/{u}/Documents/{doc_name(rng, weighted(rng, OFFICE_EXT))}"
        payload = ('{"@context":"https://www.w3.org/ns/activitystreams","type":"%s",'
                   '"id":"/activity-%d","updated":"%sZ","actor":{"type":"Person","id":"%s",'
                   '"name":"%s"},"object":{"type":"Document","id":"%s","name":"%s",'
                   '"summary":"%s"},"target":{"type":"Folder","id":"%s"}}' % (
                       typ, i, iso(ts), u, person(rng), obj, path, paragraph(rng)[:300],
                       uuid(rng)))
        return [str(i), q(uuid(rng)), q(u), q(obj), q(typ), q(payload), "'new'",
                q(iso(ts).replace("T", " "))]

    def update(self, vals, rng, ts):
        vals[6] = q(rng.choice(("read", "archived", "notified")))
        vals[7] = q(iso(ts).replace("T", " "))


class IndexNodes(Table):
    name = "data_index_nodes"
    full_rows = 613_000
    step = 50
    create = """CREATE TABLE `data_index_nodes` (
  `id` bigint unsigned NOT NULL AUTO_INCREMENT,
  `uuid` varchar(128) NOT NULL,
  `level` smallint NOT NULL,
  `hash` varchar(40) NOT NULL,
  `mpath1` varchar(255) NOT NULL,
  `name` varchar(255) NOT NULL,
  `leaf` tinyint(1) DEFAULT NULL,
  `mtime` int NOT NULL,
  `etag` varchar(255) DEFAULT '-1',
  `size` bigint DEFAULT '0',
  `mode` varchar(10) DEFAULT NULL,
  PRIMARY KEY (`id`),
  UNIQUE KEY `uuid` (`uuid`),
  KEY `idx_hash` (`hash`),
  KEY `idx_mpath1` (`mpath1`)
) ENGINE=InnoDB AUTO_INCREMENT={ai} DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_0900_ai_ci;"""

    def row(self, rng, i, ts):
        level = rng.randint(2, 9)
        mpath = ".".join(str(rng.randint(1, 400)) for _ in range(level))
        leaf = rng.random() < 0.85
        name = doc_name(rng, weighted(rng, OFFICE_EXT)) if leaf else rng.choice(DOC_DIRS)
        return [str(i), q(uuid(rng)), str(level), q(hexstr(rng, 40)), q(mpath), q(name),
                "1" if leaf else "0", str(int(ts)), q(hexstr(rng, 32)),
                str(rng.randint(100, 50_000_000) if leaf else 0), q("0777" if not leaf else "0666")]

    def update(self, vals, rng, ts):
        vals[7] = str(int(ts))
        vals[8] = q(hexstr(rng, 32))
        vals[9] = str(rng.randint(100, 50_000_000))


class DataMeta(Table):
    name = "data_meta"
    full_rows = 361_000
    step = 90
    create = """CREATE TABLE `data_meta` (
  `id` bigint unsigned NOT NULL AUTO_INCREMENT,
  `node_id` varchar(128) NOT NULL,
  `namespace` varchar(128) NOT NULL,
  `author` varchar(128) DEFAULT NULL,
  `timestamp` int DEFAULT NULL,
  `format` varchar(50) DEFAULT NULL,
  `data` blob,
  PRIMARY KEY (`id`),
  UNIQUE KEY `node_ns` (`node_id`,`namespace`)
) ENGINE=InnoDB AUTO_INCREMENT={ai} DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_0900_ai_ci;"""

    def row(self, rng, i, ts):
        ns = rng.choice(("usermeta-tags", "ImageDimensions", "usermeta-rating",
                         "usermeta-comment", "ContentType", "pydio:meta-data-source-path"))
        if ns == "ImageDimensions":
            data = '{"width":%d,"height":%d}' % (rng.choice((4032, 1920, 6000)), rng.choice((3024, 1080, 4000)))
        elif ns == "usermeta-tags":
            data = '"%s"' % ",".join(rng.sample(VOCAB, rng.randint(1, 4)))
        elif ns == "usermeta-comment":
            data = '"%s"' % paragraph(rng)[:200]
        else:
            data = '"%s"' % (f"personal/{rng.choice(USERS)}/{rng.choice(DOC_DIRS)}/"
                             f"{doc_name(rng, weighted(rng, OFFICE_EXT))}")
        return [str(i), q(uuid(rng)), q(ns), q(rng.choice(USERS)), str(int(ts)), "'json'", q(data)]

    def update(self, vals, rng, ts):
        vals[4] = str(int(ts))
        vals[6] = q('"%s"' % ",".join(rng.sample(VOCAB, rng.randint(1, 4))))


class Acls(Table):
    name = "idm_acls"
    full_rows = 285_000
    step = 120
    create = """CREATE TABLE `idm_acls` (
  `id` bigint unsigned NOT NULL AUTO_INCREMENT,
  `action_name` varchar(500) DEFAULT NULL,
  `action_value` varchar(500) DEFAULT NULL,
  `role_id` int DEFAULT NULL,
  `workspace_id` int DEFAULT NULL,
  `node_id` int DEFAULT NULL,
  `created_at` int DEFAULT NULL,
  `expires_at` int DEFAULT NULL,
  PRIMARY KEY (`id`),
  KEY `acls_role_idx` (`role_id`),
  KEY `acls_node_idx` (`node_id`)
) ENGINE=InnoDB AUTO_INCREMENT={ai} DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_0900_ai_ci;"""

    def row(self, rng, i, ts):
        act = rng.choice(("read", "write", "workspace-path", "parameter:core.conf:lang",
                          "action:access.gateway:upload", "quota", "policy"))
        return [str(i), q(act), q(rng.choice(("1", "0", "en-us", "fr", "10737418240", "personal/%s" % rng.choice(USERS)))),
                str(rng.randint(1, 4000)), str(rng.randint(1, 60)), str(rng.randint(1, 900000)),
                str(int(ts)), "NULL" if rng.random() < 0.9 else str(int(ts) + 30 * DAY)]

    def update(self, vals, rng, ts):
        vals[2] = q(rng.choice(("1", "0")))
        vals[6] = str(int(ts))


class UserAttrs(Table):
    name = "idm_user_attributes"
    full_rows = 120_000
    step = 300
    create = """CREATE TABLE `idm_user_attributes` (
  `id` bigint unsigned NOT NULL AUTO_INCREMENT,
  `uuid` varchar(128) NOT NULL,
  `name` varchar(255) NOT NULL,
  `value` longtext,
  PRIMARY KEY (`id`),
  KEY `idx_uuid_name` (`uuid`,`name`)
) ENGINE=InnoDB AUTO_INCREMENT={ai} DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_0900_ai_ci;"""

    def row(self, rng, i, ts):
        name = rng.choice(("displayName", "email", "preferences", "avatar", "lang",
                           "recentPlaces", "profile"))
        if name == "preferences":
            v = '{"theme":"%s","lang":"%s","notifications":%s,"layout":"%s","note":"%s"}' % (
                rng.choice(("light", "dark")), rng.choice(("en", "fr", "de")),
                rng.choice(("true", "false")), rng.choice(("grid", "list")), sentence(rng))
        elif name == "recentPlaces":
            v = "[" + ",".join('"%s"' % uuid(rng) for _ in range(rng.randint(1, 6))) + "]"
        elif name == "email":
            v = f"{rng.choice(_FIRST).lower()}.{rng.choice(_LAST).lower()}@example.org"
        else:
            v = person(rng)
        return [str(i), q(uuid(rng)), q(name), q(v)]

    def update(self, vals, rng, ts):
        vals[3] = q(person(rng) if rng.random() < 0.5 else sentence(rng))


TABLES = [IndexNodes(), ActivityLog(), DataMeta(), Acls(), UserAttrs()]
BLOCK = 1024


def night2_changes(seed: int, table: Table, n: int):
    rng = random.Random(f"{seed}:sql:{table.name}:night2")
    n_upd, n_new, n_del = round(n * 0.01), round(n * 0.005), round(n * 0.002)
    newest_lo = n - max(1, int(n * 0.05)) + 1
    upd_new = rng.sample(range(newest_lo, n + 1), min(n + 1 - newest_lo, round(n_upd * 0.8)))
    upd_old = rng.sample(range(1, newest_lo), min(newest_lo - 1, n_upd - len(upd_new)))
    updated = set(upd_new) | set(upd_old)
    deleted: set[int] = set()
    while len(deleted) < n_del:
        c = rng.randint(1, n)
        if c not in updated:
            deleted.add(c)
    return updated, deleted, n_new


def cmd_sqldump(args) -> None:
    t0 = time.time()
    scale = 40 / 430 if args.small else 1.0
    night = args.night
    dump_ts = BASE_TIME + (night - 1) * DAY
    out = open(args.file, "w", buffering=4 * MiB, encoding="utf-8", newline="\n")
    out.write("-- MySQL dump 10.13  Distrib 8.0.36, for Linux (x86_64)\n--\n"
              "-- Host: localhost    Database: cells\n"
              "-- ------------------------------------------------------\n"
              "-- Server version\t8.0.36-0ubuntu0.22.04.1\n\n"
              "/*!40101 SET @OLD_CHARACTER_SET_CLIENT=@@CHARACTER_SET_CLIENT */;\n"
              "/*!40101 SET @OLD_CHARACTER_SET_RESULTS=@@CHARACTER_SET_RESULTS */;\n"
              "/*!40101 SET @OLD_COLLATION_CONNECTION=@@COLLATION_CONNECTION */;\n"
              "/*!50503 SET NAMES utf8mb4 */;\n"
              "/*!40103 SET @OLD_TIME_ZONE=@@TIME_ZONE */;\n"
              "/*!40103 SET TIME_ZONE='+00:00' */;\n"
              "/*!40014 SET @OLD_UNIQUE_CHECKS=@@UNIQUE_CHECKS, UNIQUE_CHECKS=0 */;\n"
              "/*!40014 SET @OLD_FOREIGN_KEY_CHECKS=@@FOREIGN_KEY_CHECKS, FOREIGN_KEY_CHECKS=0 */;\n"
              "/*!40101 SET @OLD_SQL_MODE=@@SQL_MODE, SQL_MODE='NO_AUTO_VALUE_ON_ZERO' */;\n"
              "/*!40111 SET @OLD_SQL_NOTES=@@SQL_NOTES, SQL_NOTES=0 */;\n\n")
    total_rows = 0
    for table in TABLES:
        n = max(1000, round(table.full_rows * scale))
        if night == 2:
            updated, deleted, n_new = night2_changes(args.seed, table, n)
        else:
            updated, deleted, n_new = set(), set(), 0
        last = n + n_new
        t_first = BASE_TIME - n * table.step
        out.write(f"--\n-- Table structure for table `{table.name}`\n--\n\n"
                  f"DROP TABLE IF EXISTS `{table.name}`;\n"
                  "/*!40101 SET @saved_cs_client     = @@character_set_client */;\n"
                  "/*!50503 SET character_set_client = utf8mb4 */;\n"
                  + table.create.replace("{ai}", str(last + 1)) +
                  "\n/*!40101 SET character_set_client = @saved_cs_client */;\n\n"
                  f"--\n-- Dumping data for table `{table.name}`\n--\n\n"
                  f"LOCK TABLES `{table.name}` WRITE;\n"
                  f"/*!40000 ALTER TABLE `{table.name}` DISABLE KEYS */;\n")
        prefix = f"INSERT INTO `{table.name}` VALUES "
        buf: list[str] = []
        blen = len(prefix)
        for b0 in range(1, last + 1, BLOCK):
            rng = random.Random(f"{args.seed}:sql:{table.name}:{b0}")
            for i in range(b0, min(b0 + BLOCK, last + 1)):
                ts = t_first + i * table.step + rng.randint(0, table.step - 1)
                vals = table.row(rng, i, ts)
                if i in deleted:
                    continue
                if i in updated:
                    urng = random.Random(f"{args.seed}:sql:{table.name}:upd:{i}")
                    table.update(vals, urng, dump_ts - urng.randint(60, 20 * 3600))
                r = "(" + ",".join(vals) + ")"
                if buf and blen + len(r) + 2 > SQL_LINE:
                    out.write(prefix + ",".join(buf) + ";\n")
                    buf, blen = [], len(prefix)
                buf.append(r)
                blen += len(r) + 1
                total_rows += 1
        if buf:
            out.write(prefix + ",".join(buf) + ";\n")
        out.write(f"/*!40000 ALTER TABLE `{table.name}` ENABLE KEYS */;\nUNLOCK TABLES;\n\n")
    out.write("/*!40103 SET TIME_ZONE=@OLD_TIME_ZONE */;\n\n"
              "/*!40101 SET SQL_MODE=@OLD_SQL_MODE */;\n"
              "/*!40014 SET FOREIGN_KEY_CHECKS=@OLD_FOREIGN_KEY_CHECKS */;\n"
              "/*!40014 SET UNIQUE_CHECKS=@OLD_UNIQUE_CHECKS */;\n"
              "/*!40101 SET CHARACTER_SET_CLIENT=@OLD_CHARACTER_SET_CLIENT */;\n"
              "/*!40101 SET CHARACTER_SET_RESULTS=@OLD_CHARACTER_SET_RESULTS */;\n"
              "/*!40101 SET COLLATION_CONNECTION=@OLD_COLLATION_CONNECTION */;\n"
              "/*!40111 SET SQL_NOTES=@OLD_SQL_NOTES */;\n\n"
              f"-- Dump completed on {time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(dump_ts + 427))}\n")
    out.close()
    size = os.path.getsize(args.file)
    print(f"gen_corpus: sqldump {args.file} night {night}: {total_rows} rows, "
          f"{size / MiB:.1f} MiB in {time.time() - t0:.1f}s", file=sys.stderr)


def cmd_stats(args) -> None:
    files, total = tree_stats(args.dir)
    print(files, total)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("folder", help="generate a Cells-like home folder")
    p.add_argument("dir")
    p.add_argument("--small", action="store_true")
    p.add_argument("--seed", type=int, default=DEFAULT_SEED)
    p.set_defaults(fn=cmd_folder)
    p = sub.add_parser("mutate", help="apply a deterministic next-night change set")
    p.add_argument("dir")
    p.add_argument("--small", action="store_true")
    p.add_argument("--seed", type=int, default=DEFAULT_SEED)
    p.set_defaults(fn=cmd_mutate)
    p = sub.add_parser("sqldump", help="write a mysqldump-like SQL file")
    p.add_argument("file")
    p.add_argument("--small", action="store_true")
    p.add_argument("--night", type=int, choices=(1, 2), default=1)
    p.add_argument("--seed", type=int, default=DEFAULT_SEED)
    p.set_defaults(fn=cmd_sqldump)
    p = sub.add_parser("stats", help="print '<files> <bytes>' for a tree")
    p.add_argument("dir")
    p.set_defaults(fn=cmd_stats)
    args = ap.parse_args()
    args.fn(args)


if __name__ == "__main__":
    main()
