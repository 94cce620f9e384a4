"""Builds and installs the `llada2` Python package: the extension llada2._core is built by the project's
CMake build (-DLLADA2_PYTHON=ON) and packaged with python/llada2/. On Debian/Ubuntu, in a virtual
environment that sees the system's NumPy and setuptools (pip builds offline this way):

    python3 -m venv --system-site-packages .venv
    .venv/bin/pip install --no-build-isolation ./python

LLADA2_BUILD_DIR names the CMake build directory to build in (or reuse); default: build-python/ at the
top of the repository.
"""

import glob
import os
import shutil
import subprocess

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))


class CMakeBuild(build_ext):
    def build_extension(self, ext):
        build_dir = os.path.abspath(os.environ.get("LLADA2_BUILD_DIR") or os.path.join(ROOT, "build-python"))
        if not os.path.exists(os.path.join(build_dir, "CMakeCache.txt")):
            gen = ["-G", "Ninja"] if shutil.which("ninja") else []
            subprocess.check_call(["cmake", "-S", ROOT, "-B", build_dir, *gen, "-DCMAKE_BUILD_TYPE=Release",
                                   "-DLLADA2_TESTS=OFF", "-DLLADA2_PYTHON=ON"])
        else:
            subprocess.check_call(["cmake", "-S", ROOT, "-B", build_dir, "-DLLADA2_PYTHON=ON"])
        subprocess.check_call(["cmake", "--build", build_dir, "--target", "llada2_python", "-j", str(os.cpu_count() or 1)])
        built = glob.glob(os.path.join(build_dir, "python", "llada2", "_core*.so"))
        if not built:
            raise RuntimeError(f"the build in {build_dir} made no llada2/_core*.so")
        dest = self.get_ext_fullpath(ext.name)
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        shutil.copyfile(built[0], dest)


setup(
    packages=["llada2"],
    package_data={"llada2": ["py.typed", "*.pyi"]},
    ext_modules=[Extension("llada2._core", sources=[])],
    cmdclass={"build_ext": CMakeBuild},
)
