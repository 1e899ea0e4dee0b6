"""Builds the compiled kernels; everything else is in pyproject.toml.

The extension is optional: without a C compiler the install still succeeds and the
detector falls back to its numpy reference (`DtmfDetector.kernel` says which runs).
"""

from Cython.Build import cythonize
from setuptools import Extension, setup

setup(
    ext_modules=cythonize(
        [
            Extension(
                "media.dsp._dtmf_kernel",
                ["media/dsp/_dtmf_kernel.pyx"],
                extra_compile_args=["-O3"],
                optional=True,
            )
        ],
        compiler_directives={"language_level": "3"},
    )
)
