"""Command line: ``python -m plstm_geometric.datasets {build-ogb,prepare} ...``.

build-ogb  writes OGB's raw layout for a molecular dataset from a CSV of SMILES (offline).
prepare    downloads or builds a dataset by name and processes it, then prints a summary;
           with --from PATH it first copies (or, with --link, links) the raw TU text files of a
           TU dataset, or LRGB's two Peptides-func files (md5-checked), from PATH into the data
           root, so no download is needed.
"""

import argparse
import logging
import sys

from .build_ogb import KNOWN_SOURCES, MAX_ATOMS, MAX_SMILES_LENGTH, build_ogb_dataset
from .lrgb import NAME as PEPTIDES_NAME
from .lrgb import prepare_peptides
from .registry import dataset_names, load_dataset
from .tu import TUGraphDataset, is_tu_name, prepare_tu

# Where MoleculeNet's CSVs are public (DeepChem's data bucket).
MOLECULENET_URL = "https://deepchemdata.s3-us-west-1.amazonaws.com/datasets/"


def known_names_epilog() -> str:
    """The known names of build-ogb and the label columns it reads for each (from :data:`KNOWN_SOURCES`)."""
    lines = ["known names and their default --target-columns:"]
    for name, (columns, _) in KNOWN_SOURCES.items():
        shown = repr(columns[0]) if len(columns) == 1 else f"{len(columns)} columns {columns[0]!r} ... {columns[-1]!r}"
        lines.append(f"  {name:<18} {shown}")
    lines += [
        "",
        "MoleculeNet's CSVs are public at",
        f"  {MOLECULENET_URL}<file>",
        "with other column names: datasets/README.md gives the file and the options for each name.",
    ]
    return "\n".join(lines)


def parser() -> argparse.ArgumentParser:
    main = argparse.ArgumentParser(
        prog="python -m plstm_geometric.datasets",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = main.add_subparsers(dest="command", required=True)

    build = commands.add_parser(
        "build-ogb",
        help="write OGB's raw layout from a CSV of SMILES",
        description="Writes OGB's raw layout for a molecular dataset from a CSV of SMILES strings (offline).",
        epilog=known_names_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    build.add_argument("--csv", required=True, help="CSV file with a header")
    build.add_argument("--name", required=True, help="dataset name, e.g. ogbg-molhiv")
    build.add_argument("--root", default="datasets", help="data root (default: datasets)")
    build.add_argument("--smiles-column", default="smiles", help="column of SMILES strings (default: smiles)")
    build.add_argument(
        "--target-columns",
        nargs="+",
        default=None,
        help="label columns (required unless --name is a known name: see below)",
    )
    build.add_argument("--id-column", default=None, help="column copied to mapping's mol_id")
    build.add_argument("--strict", action="store_true", help="fail on the first invalid SMILES instead of skipping it")
    build.add_argument("--overwrite", action="store_true", help="replace an existing build")
    build.add_argument(
        "--max-atoms",
        type=int,
        default=MAX_ATOMS,
        help=f"skip (or with --strict, refuse) larger molecules (default: {MAX_ATOMS})",
    )
    build.add_argument(
        "--max-smiles-length",
        type=int,
        default=MAX_SMILES_LENGTH,
        help=f"skip (or with --strict, refuse) longer SMILES (default: {MAX_SMILES_LENGTH})",
    )

    prepare = commands.add_parser("prepare", help="download or build a dataset and process it")
    prepare.add_argument("name", help=f"one of {', '.join(dataset_names())}, or any TU dataset name")
    prepare.add_argument("--root", default="datasets")
    prepare.add_argument(
        "--from",
        dest="source",
        default=None,
        metavar="PATH",
        help="folder with the raw TU text files (NAME_A.txt, ...), or for peptides-func LRGB's "
        "CSV and split pickle, to copy into the data root",
    )
    prepare.add_argument("--link", action="store_true", help="with --from: link the files instead of copying")
    return main


def main(argv=None) -> int:
    arguments = parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        if arguments.command == "build-ogb":
            folder = build_ogb_dataset(
                arguments.csv,
                arguments.name,
                arguments.root,
                smiles_column=arguments.smiles_column,
                target_columns=arguments.target_columns,
                strict=arguments.strict,
                id_column=arguments.id_column,
                overwrite=arguments.overwrite,
                max_atoms=arguments.max_atoms,
                max_smiles_length=arguments.max_smiles_length,
            )
            print(folder)
        else:
            if arguments.link and arguments.source is None:
                raise ValueError("--link: expected --from PATH with it, got no --from")
            if arguments.source is not None and arguments.name == PEPTIDES_NAME:
                prepare_peptides(arguments.source, arguments.root, link=arguments.link)
            elif arguments.source is not None:
                if arguments.name in dataset_names() and not is_tu_name(arguments.name):
                    raise ValueError(
                        f"--from: expected a TU dataset name, got {arguments.name!r} (molecular "
                        f"datasets are built from a CSV with build-ogb)"
                    )
                prepare_tu(arguments.name, arguments.source, arguments.root, link=arguments.link)
            if is_tu_name(arguments.name, arguments.root):
                dataset = TUGraphDataset(arguments.name, arguments.root)
            else:
                dataset = load_dataset(arguments.name, arguments.root)
            if isinstance(dataset, TUGraphDataset):  # split by cross-validation folds (tu_folds)
                parts = f"{dataset.num_classes} classes, {dataset.num_node_features} node features"
            else:
                parts = f"split sizes { {part: len(index) for part, index in dataset.get_idx_split().items()} }"
            print(
                f"{dataset}: task {dataset.task_type}, metric {dataset.eval_metric}, "
                f"{dataset.num_tasks} task(s), {parts}"
            )
    except (ValueError, TypeError, FileExistsError, FileNotFoundError, RuntimeError) as error:
        logging.getLogger("plstm_geometric.datasets").error("%s", error)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
