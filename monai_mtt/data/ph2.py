"""Reader for the PH2 dermoscopy data set (Mendonca et al., EMBC 2013) in its official layout.

Layout::

    PH2 Dataset images/IMDxxx/IMDxxx_Dermoscopic_Image/IMDxxx.bmp
    PH2 Dataset images/IMDxxx/IMDxxx_lesion/IMDxxx_lesion.bmp        1-bit lesion mask
    PH2_dataset.txt | PH2_dataset.xlsx | ph2_labels.csv                labels

Label sources, first found wins unless one is given explicitly: ``ph2_labels.csv`` (columns
``image_name,clinical_diagnosis``), the official pipe table ``PH2_dataset.txt``, the official sheet
``PH2_dataset.xlsx`` (needs ``openpyxl``: ``pip install monai-mtt[xlsx]``).

PH2 clinical diagnosis: 0 common nevus, 1 atypical nevus, 2 melanoma. As in the paper, the model
sees two classes: melanoma -> ``"class"`` 1, common/atypical nevus -> ``"class"`` 0; the raw
diagnosis is kept in ``"ph2_diagnosis"``.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

from monai_mtt.data.validation import DataProblem, raise_for_problems, real_path, validate_items
from monai_mtt.keys import BatchKeys

__all__ = [
    "PH2_IMAGES_FOLDER",
    "PH2_LABEL_FILES",
    "find_ph2_root",
    "read_ph2_labels",
    "ph2_two_class",
    "read_ph2",
]

PH2_IMAGES_FOLDER = "PH2 Dataset images"
PH2_LABEL_FILES = ("ph2_labels.csv", "PH2_dataset.txt", "PH2_dataset.xlsx")
"""Label files looked for next to ``PH2 Dataset images``, in order of preference."""

_CASE_ID = re.compile(r"^IMD\d+$")
_EXPECTED_LAYOUT = (
    f"'{PH2_IMAGES_FOLDER}/IMDxxx/IMDxxx_Dermoscopic_Image/IMDxxx.bmp' and "
    f"'.../IMDxxx_lesion/IMDxxx_lesion.bmp', with one of {', '.join(PH2_LABEL_FILES)} beside '{PH2_IMAGES_FOLDER}'"
)


def ph2_two_class(diagnosis: int) -> int:
    """Map a PH2 clinical diagnosis (0 common nevus, 1 atypical nevus, 2 melanoma) to the paper's
    two classes (0 nevus, 1 melanoma).

    Args:
        diagnosis: PH2 clinical diagnosis.

    Returns:
        1 for melanoma, 0 otherwise.
    """
    return 1 if diagnosis == 2 else 0


def find_ph2_root(root: str | Path, search_children: bool = True) -> Path | None:
    """Locate the folder that contains ``PH2 Dataset images``.

    Accepts that folder, the ``PH2 Dataset images`` folder itself, or a wrapper folder with exactly
    one such folder one level down (the official zip extracts to ``PH2Dataset/``).

    Args:
        root: user-supplied path.
        search_children: also look one level down.

    Returns:
        The PH2 root, or None (also when several candidates are found one level down).
    """
    root = Path(root)
    if not root.is_dir():
        return None
    if (root / PH2_IMAGES_FOLDER).is_dir():
        return root
    if root.name == PH2_IMAGES_FOLDER:
        return root.parent
    if not search_children:
        return None
    candidates = [c for c in sorted(root.iterdir()) if c.is_dir() and (c / PH2_IMAGES_FOLDER).is_dir()]
    return candidates[0] if len(candidates) == 1 else None


def _read_csv(path: Path) -> tuple[dict[str, int], list[DataProblem]]:
    labels: dict[str, int] = {}
    problems: list[DataProblem] = []
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        fields = [h.strip() for h in reader.fieldnames or []]
        if "image_name" not in fields or "clinical_diagnosis" not in fields:
            return {}, [
                DataProblem(
                    str(path),
                    f"PH2 label CSV needs columns image_name,clinical_diagnosis (found: {', '.join(fields)})",
                    "fix the header",
                )
            ]
        reader.fieldnames = fields
        for line, row in enumerate(reader, start=2):
            _add_label(labels, problems, f"{path}:{line}", row["image_name"], row["clinical_diagnosis"])
    return labels, problems


def _add_label(labels: dict[str, int], problems: list[DataProblem], where: str, name: str, value: object) -> None:
    name = (name or "").strip()
    text = str(value if value is not None else "").strip()
    try:
        diagnosis = int(float(text))
    except ValueError:
        diagnosis = -1
    if diagnosis not in (0, 1, 2):
        problems.append(
            DataProblem(where, f"{name}: clinical diagnosis {text!r} is not 0, 1 or 2", "correct the label row")
        )
    elif name in labels:
        problems.append(DataProblem(where, f"duplicate label row for {name}", "keep one row per case"))
    else:
        labels[name] = diagnosis


def _read_txt(path: Path) -> tuple[dict[str, int], list[DataProblem]]:
    labels: dict[str, int] = {}
    problems: list[DataProblem] = []
    name_col = clinical_col = None
    with open(path, encoding="utf-8", errors="replace") as f:
        for line_no, line in enumerate(f, start=1):
            if "||" not in line:
                continue
            fields = [c.strip() for c in line.strip().split("||")]
            if name_col is None or clinical_col is None:  # (both are set together)
                if "Name" in fields and "Clinical Diagnosis" in fields:
                    name_col, clinical_col = fields.index("Name"), fields.index("Clinical Diagnosis")
                continue
            if len(fields) > max(name_col, clinical_col) and _CASE_ID.match(fields[name_col]):
                _add_label(labels, problems, f"{path}:{line_no}", fields[name_col], fields[clinical_col])
    if name_col is None:
        problems.append(
            DataProblem(
                str(path),
                "no header row '|| Name || Histological Diagnosis || Clinical Diagnosis || ...' found",
                "use the PH2_dataset.txt from the official PH2 download",
            )
        )
    return labels, problems


def _read_xlsx(path: Path) -> tuple[dict[str, int], list[DataProblem]]:
    try:
        import openpyxl
    except ImportError:
        return {}, [
            DataProblem(
                str(path),
                "reading the PH2 sheet needs openpyxl, which is not installed",
                "pip install openpyxl (or monai-mtt[xlsx]), or provide PH2_dataset.txt",
            )
        ]
    labels: dict[str, int] = {}
    problems: list[DataProblem] = []
    workbook = openpyxl.load_workbook(path, read_only=True, data_only=True)
    try:
        sheet = workbook.worksheets[0]
        columns: dict[str, int] | None = None
        for row_no, row in enumerate(sheet.iter_rows(values_only=True), start=1):
            cells = [str(c).strip() if c is not None else "" for c in row]
            if columns is None:
                if "Image Name" in cells:
                    columns = {c: i for i, c in enumerate(cells) if c}
                continue
            name = cells[columns["Image Name"]] if columns["Image Name"] < len(cells) else ""
            if not _CASE_ID.match(name):
                continue
            marks = [
                k
                for k, col in enumerate(("Common Nevus", "Atypical Nevus", "Melanoma"))
                if columns.get(col) is not None and columns[col] < len(cells) and cells[columns[col]].upper() == "X"
            ]
            _add_label(labels, problems, f"{path}:row {row_no}", name, marks[0] if len(marks) == 1 else "")
    finally:
        workbook.close()
    if columns is None:
        problems.append(
            DataProblem(str(path), "no 'Image Name' header found in the first sheet", "use the official PH2 sheet")
        )
    return labels, problems


def read_ph2_labels(path: str | Path) -> tuple[dict[str, int], list[DataProblem]]:
    """Read PH2 clinical diagnoses from ``.csv``, the official ``.txt`` pipe table or ``.xlsx``.

    Args:
        path: label file; the format is chosen by suffix.

    Returns:
        ``(labels, problems)``: case id (``"IMD003"``) -> clinical diagnosis (0, 1, 2), and the bad
        rows or unreadable file.
    """
    path = Path(path)
    if not path.is_file():
        return {}, [DataProblem(str(path), "PH2 label file is missing", f"provide one of {', '.join(PH2_LABEL_FILES)}")]
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            return _read_csv(path)
        if suffix == ".txt":
            return _read_txt(path)
        if suffix == ".xlsx":
            return _read_xlsx(path)
    except Exception as exc:  # noqa: BLE001 - any parser failure is a data problem, not a crash
        return {}, [DataProblem(str(path), f"label file cannot be read ({type(exc).__name__}: {exc})", "restore it")]
    return {}, [DataProblem(str(path), f"unsupported label file type {suffix!r}", "use .csv, .txt or .xlsx")]


def _default_label_file(root: Path) -> Path | None:
    for name in PH2_LABEL_FILES:
        if (root / name).is_file():
            if name.endswith(".xlsx"):
                try:
                    import openpyxl  # noqa: F401
                except ImportError:
                    continue
            return root / name
    for name in PH2_LABEL_FILES:  # only the sheet exists: report that openpyxl is needed
        if (root / name).is_file():
            return root / name
    return None


def read_ph2(
    root: str | Path,
    labels: str | Path | None = None,
    validate: bool = True,
    check_pixels: bool = True,
) -> list[dict]:
    """Read PH2 into datalist items.

    Args:
        root: the folder holding ``PH2 Dataset images`` (see :func:`find_ph2_root`).
        labels: label file; by default the first of :data:`PH2_LABEL_FILES` found in the root.
        validate: collect structural problems (case without image/mask/label row, label row
            without case, empty folder) and check every file; when False cases without a label
            row get no ``"class"``.
        check_pixels: with ``validate``, fully decode images and masks.

    Returns:
        Items with ``"image"``, ``"label"``, ``"class"`` (0 nevus, 1 melanoma), ``"ph2_diagnosis"``
        (0, 1, 2) and ``"id"``, sorted by id.

    Raises:
        DataValidationError: wrong root, or (with ``validate``) every problem found.
    """
    found = find_ph2_root(root)
    if found is None:
        raise_for_problems(
            [
                DataProblem(
                    str(root),
                    f"no PH2 layout found; expected {_EXPECTED_LAYOUT}",
                    f"point the root at the folder that contains '{PH2_IMAGES_FOLDER}'",
                )
            ],
            "PH2 data set",
        )
    assert found is not None
    problems: list[DataProblem] = []
    label_path = Path(labels) if labels is not None else _default_label_file(found)
    diagnoses: dict[str, int] = {}
    labels_ok = False
    if label_path is None:
        problems.append(
            DataProblem(
                str(found),
                f"no PH2 label file; looked for {', '.join(PH2_LABEL_FILES)}",
                "copy PH2_dataset.txt (or .xlsx) from the official download next to the images folder",
            )
        )
    else:
        diagnoses, label_problems = read_ph2_labels(label_path)
        problems += label_problems
        labels_ok = not any(p.path == str(label_path) for p in label_problems)

    images_dir = found / PH2_IMAGES_FOLDER
    items: list[dict] = []
    cases = sorted(c for c in images_dir.iterdir() if c.is_dir() and not c.name.startswith("."))
    if not cases:
        problems.append(
            DataProblem(str(images_dir), "folder holds no IMDxxx case folders", "extract the PH2 images here")
        )
    for case in cases:
        case_id = case.name
        image = case / f"{case_id}_Dermoscopic_Image" / f"{case_id}.bmp"
        mask = case / f"{case_id}_lesion" / f"{case_id}_lesion.bmp"
        if not image.is_file():
            problems.append(
                DataProblem(str(image), "dermoscopic image is missing", "restore the case folder from the download")
            )
            continue
        item: dict = {BatchKeys.IMAGE: str(image.resolve()), BatchKeys.LABEL: real_path(mask), "id": case_id}
        if case_id in diagnoses:
            item[BatchKeys.CLASS] = ph2_two_class(diagnoses[case_id])
            item["ph2_diagnosis"] = diagnoses[case_id]
        elif labels_ok and label_path and not any(p.problem.startswith(f"{case_id}: ") for p in label_problems):
            # (a row with an invalid diagnosis is reported once, as such, not also as missing)
            problems.append(
                DataProblem(
                    str(image), f"case {case_id} has no row in {label_path.name}", "add its row or remove the case"
                )
            )
        items.append(item)
    if labels_ok and cases:
        case_ids = {c.name for c in cases}
        for case_id in diagnoses:
            if case_id not in case_ids:
                problems.append(
                    DataProblem(
                        str(label_path),
                        f"label row {case_id} has no case folder in '{PH2_IMAGES_FOLDER}'",
                        "add the case or delete the row",
                    )
                )
    if validate:
        problems += validate_items(items, check_pixels=check_pixels)
        raise_for_problems(problems, f"PH2 data set at {found}")
    return items
