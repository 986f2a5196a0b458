#!/usr/bin/env bash
# Fetch, into .whl/ (git-ignored), the wheels that an offline GPU machine with Python 3.12 and JAX
# but no TensorFlow, Keras or Jupyter needs to run chapter 06 with papermill, the benchmark and
# the unit tests on the JAX backend (tools/gpu_check.sh). Run it here, where pip reaches PyPI.
#
#   bash tools/gpu_wheels.sh            # then: bash tools/gpu_check.sh on the GPU machine
#
# Pinned versions as used on 2026-11-26 (keras as in this repo's .venv). The GPU image already had
# numpy, scipy, matplotlib, jax, ml-dtypes, h5py, rich, absl-py, tqdm, pytest and the like; they
# are not fetched, so they are not shadowed there. About 20 MiB.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .whl
PACKAGES=(
  keras==3.15.1 namex==0.1.0 optree==0.20.0
  papermill==2.7.0 entrypoints==0.4.2 tenacity==9.2.1 nbclient==0.11.0 nbformat==5.11.1
  fastjsonschema==2.22.3 jsonschema==4.26.0 jsonschema_specifications==2025.9.1 referencing==0.37.0
  rpds_py==2026.9.1 jupyter_client==8.10.0 jupyter_core==5.9.1 platformdirs==4.14.8
  traitlets==5.16.1 pyzmq==27.3.0 tornado==6.6.1 ipykernel==7.4.0 comm==0.2.3 debugpy==1.8.22
  nest_asyncio2==1.7.4 ipython==9.18.1 ipython_pygments_lexers==1.1.1 jedi==0.20.1 parso==0.8.7
  matplotlib_inline==0.2.2 pexpect==4.9.0 ptyprocess==0.7.0 prompt_toolkit==3.0.53
  wcwidth==0.9.4 stack_data==0.6.3 executing==2.3.0 asttokens==3.0.2 pure_eval==0.2.4
  ipywidgets==8.1.9 widgetsnbextension==4.0.16 jupyterlab_widgets==3.0.17
  jupytext==1.19.6 mdit_py_plugins==0.7.0 nibabel==5.4.2
)
python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_26_x86_64 \
  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux1_x86_64 \
  -d .whl "${PACKAGES[@]}"
du -sh .whl
