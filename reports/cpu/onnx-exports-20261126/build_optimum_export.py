from pathlib import Path
from optimum.exporters.onnx import main_export
from harness.checkpoints import build_random_init
from harness.config import resolve_model
w = build_random_init(resolve_model("xlmr-base"), Path("/tmp/optbench/cache"))
main_export(str(w), output=Path("/tmp/optbench/xlmr-base-optimum"), task="feature-extraction")
Path("/tmp/optbench/xlmr-base-optimum.toml").write_text(
    f'name = "xlmr-base-optimum"\nsource = "/tmp/optbench/xlmr-base-optimum"\nreference = "{w}"\n')
print(w)
