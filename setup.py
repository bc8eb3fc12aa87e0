from setuptools import find_packages, setup

setup(
    name="plstm_geometric",
    version="0.1.0",
    description="pLSTM (parallelizable Linear Source Transition Mark networks) and parallel linear "
    "recurrences for PyTorch Geometric",
    long_description=open("README.md").read(),
    long_description_content_type="text/markdown",
    packages=find_packages(include=["plstm_geometric", "plstm_geometric.*"]),
    python_requires=">=3.10",
    install_requires=[
        "torch>=2.4",
        "torch_geometric>=2.5",
        "networkx",
        "ogb>=1.3.6",
        "rdkit",
        "numpy",
        "pandas",
        "scikit-learn",
        "tqdm",
        "matplotlib",
    ],
    extras_require={
        "scatter": ["torch_scatter"],
        # Triton kernels are optional at run time; the tests run them on CPU in Triton's interpreter.
        "triton": ["triton; platform_system == 'Linux' and platform_machine == 'x86_64'"],
        "test": ["pytest", "nbclient", "nbformat", "ipykernel",
                 "triton; platform_system == 'Linux' and platform_machine == 'x86_64'"],
    },
)
