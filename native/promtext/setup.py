"""The one C extension of etcdmonitor; everything but the module list is in pyproject.toml."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "etcdmonitor_promtext",
            sources=["promtext.c"],
            extra_compile_args=["-O3", "-Wall", "-Wextra", "-Wno-unused-parameter"],
        )
    ],
    py_modules=[],
)
