#!/usr/bin/env bash
# Download, here, the wheels the GPU machine lacks for benchmarks/gpu_check.sh, into .whl/
# (ignored by git: /.whl/ in .gitignore), in groups of at most 60 MiB: one group per device
# call (a call carries 64 MiB with the working tree).
#
#   bash benchmarks/gpu_wheels.sh            # then: ls .whl/  (g1, g2, ...)
#
# The machine's image (Python 3.12, x86-64) has torch, torchvision, timm, numpy, pandas,
# scikit-learn, pyyaml, pillow, filelock, tqdm and more (the device README's KINDS.md lists
# them); what mvit-lab needs beyond those is resolved by pip for that platform and downloaded
# without dependencies. A wheel over 60 MiB (Ray's, 79 MB) is split into parts that
# gpu_check.sh joins. Device calls, back to back (the machine is warm for 30 s after a call):
#   run(carry=[".whl/g1"], "bash benchmarks/gpu_check.sh --stage-wheels")
#   ... one per group but the last, then
#   run(carry=[".whl/gN"], "bash benchmarks/gpu_check.sh $OUT", timeout_s=600)
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
PLATFORM=(--only-binary=:all: --python-version 3.12 --implementation cp --abi cp312
          --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64
          --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64
          --platform manylinux1_x86_64)
# what mvit-lab imports on the GPU path beyond the image (versions as in the dev venv; fvcore,
# an sdist only, is the FLOP oracle of the tests, and hiera-transformer a video reference:
# neither is on this path)
NEED=("ray[tune]==2.60.0" "mlflow==3.17.2" "optuna==5.0.0" "dash==4.4.1" "plotly==7.1.0"
      "av==18.1.0")
# on the image already (KINDS.md, read 2026-11-17): never carried
HAVE="absl-py accelerate aiohttp aiosignal anyio attrs certifi charset-normalizer click
cloudpickle colorama contourpy cycler filelock fonttools frozenlist fsspec grpcio h11 httpcore
httpx huggingface-hub idna jinja2 joblib kiwisolver markdown markdown-it-py markupsafe
matplotlib mdurl mpmath msgpack multidict networkx numpy packaging pandas pillow pip pluggy
portalocker prometheus-client propcache protobuf psutil pyarrow pygments pyparsing
python-dateutil pyyaml regex requests rich safetensors scikit-learn scipy setuptools six
sympy tabulate threadpoolctl timm tokenizers torch torchvision tqdm triton typing-extensions
urllib3 werkzeug wheel wrapt yarl zipp"
mkdir -p .whl/all
"$PY" -m pip install --dry-run --ignore-installed --quiet --report .whl/report.json \
  --target /tmp/mvit_lab_resolve "${PLATFORM[@]}" "${NEED[@]}"
"$PY" - "$HAVE" <<'EOF' > .whl/wanted.txt
import json, re, sys
have = {re.sub(r"[-_.]+", "-", n).lower() for n in sys.argv[1].split()}
for item in json.load(open(".whl/report.json"))["install"]:
    meta = item["metadata"]
    name = re.sub(r"[-_.]+", "-", meta["name"]).lower()
    if name not in have and not name.startswith("nvidia-"):
        print(f"{meta['name']}=={meta['version']}")
EOF
echo "wheels to carry: $(wc -l < .whl/wanted.txt)"
"$PY" -m pip download --quiet --no-deps "${PLATFORM[@]}" -d .whl/all -r .whl/wanted.txt
# groups of at most 60 MiB, the big wheels split into parts first
LIMIT=$((60 * 1024 * 1024))
for f in .whl/all/*.whl; do
  if [ "$(stat -c %s "$f")" -gt "$LIMIT" ]; then
    split -b 50M "$f" "$f.part-" && rm "$f"
  fi
done
group=1 size=0
mkdir -p ".whl/g$group"
for f in $(ls -S .whl/all/); do
  s=$(stat -c %s ".whl/all/$f")
  if [ $((size + s)) -gt "$LIMIT" ]; then group=$((group + 1)) size=0; mkdir -p ".whl/g$group"; fi
  mv ".whl/all/$f" ".whl/g$group/" && size=$((size + s))
done
rmdir .whl/all
du -sh .whl/g* | sed 's/^/group /'
