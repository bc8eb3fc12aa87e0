"""Command line: ``python -m plstm_geometric.datasets {build-ogb,prepare} ...``.

build-ogb  writes OGB's raw layout for a molecular dataset from a CSV of SMILES (offline).
prepare    downloads or builds a dataset by name and processes it, then prints a summary.
"""
import argparse
import logging
import sys

from .build_ogb import build_ogb_dataset
from .registry import dataset_names, load_dataset


def parser() -> argparse.ArgumentParser:
    main = argparse.ArgumentParser(prog="python -m plstm_geometric.datasets",
                                   description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = main.add_subparsers(dest="command", required=True)

    build = commands.add_parser("build-ogb", help="write OGB's raw layout from a CSV of SMILES")
    build.add_argument("--csv", required=True, help="CSV file with a header")
    build.add_argument("--name", required=True, help="dataset name, e.g. ogbg-molhiv")
    build.add_argument("--root", default="datasets", help="data root (default: datasets)")
    build.add_argument("--smiles-column", default="smiles")
    build.add_argument("--target-columns", nargs="+", default=None,
                       help="label columns (default: known for ogbg-molhiv, -molbbbp, -molbace, "
                            "-molclintox, -mollipo, -molfreesolv from the MoleculeNet CSVs)")
    build.add_argument("--id-column", default=None, help="column copied to mapping's mol_id")
    build.add_argument("--strict", action="store_true",
                       help="fail on the first invalid SMILES instead of skipping it")
    build.add_argument("--overwrite", action="store_true", help="replace an existing build")

    prepare = commands.add_parser("prepare", help="download or build a dataset and process it")
    prepare.add_argument("name", help=f"one of {', '.join(dataset_names())}")
    prepare.add_argument("--root", default="datasets")
    return main


def main(argv=None) -> int:
    arguments = parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        if arguments.command == "build-ogb":
            folder = build_ogb_dataset(
                arguments.csv, arguments.name, arguments.root,
                smiles_column=arguments.smiles_column, target_columns=arguments.target_columns,
                strict=arguments.strict, id_column=arguments.id_column,
                overwrite=arguments.overwrite)
            print(folder)
        else:
            dataset = load_dataset(arguments.name, arguments.root)
            print(f"{dataset}: task {dataset.task_type}, metric {dataset.eval_metric}, "
                  f"{dataset.num_tasks} task(s), split sizes "
                  f"{ {part: len(index) for part, index in dataset.get_idx_split().items()} }")
    except (ValueError, FileExistsError, FileNotFoundError, RuntimeError) as error:
        logging.getLogger("plstm_geometric.datasets").error("%s", error)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
