"""The one C extension of etcdmonitor; everything but the module list is in pyproject.toml."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "etcdmonitor_promtext",
            sources=["promtext.c"],
            # No FMA contraction: the C sums and quantiles must round as Python's do.
            extra_compile_args=[
                "-O3",
                "-ffp-contract=off",
                "-Wall",
                "-Wextra",
                "-Wno-unused-parameter",
            ],
        )
    ],
    py_modules=[],
)
