"""Builds the compiled kernels; everything else is in pyproject.toml.

Both extensions are optional: without a C compiler the install still succeeds, the DTMF
detector falls back to its numpy reference (`DtmfDetector.kernel` says which runs) and
the RTP socket I/O to its Python one (`media.udpio.KERNEL`).
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
            ),
            Extension(
                "media._udpio",
                ["media/_udpio.pyx"],
                extra_compile_args=["-O3"],
                optional=True,
            ),
        ],
        compiler_directives={"language_level": "3"},
    )
)
