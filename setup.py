"""The optional C fast path of the OTLP decoder (collector/decoding/_fastotlp.c).

Everything else is in pyproject.toml. The extension is optional: where no C compiler is
available the install still succeeds and the collector decodes with upb alone (same results,
slower; docs/performance.md).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "collector.decoding._fastotlp",
            ["collector/decoding/_fastotlp.c"],
            optional=True,
            extra_compile_args=["-O2", "-std=c99", "-Wall", "-Wextra", "-Wno-unused-parameter"],
        )
    ]
)
