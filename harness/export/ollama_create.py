"""`export --ollama-create NAME`: the exported GGUF and Modelfile registered in a running Ollama server.

The Modelfile's parts (its 4-bit GGUF uploaded as a blob, TEMPLATE, SYSTEM, PARAMETERs) go through the `ollama`
client's create API, which is what `ollama create NAME -f Modelfile` sends. No Ollama server can be installed
on the machines this harness is tested on: without one answering, nothing is created and the served row says
so, with the command to run where Ollama is installed.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from harness.backends.ollama import ollama_host


def server_problem(host: str) -> str | None:
    """None when an Ollama server answers at `host`, else why not, in words."""
    import ollama

    try:
        ollama.Client(host=host, timeout=5).list()
    except Exception as exc:  # noqa: BLE001 -- any failure to answer means: no usable server
        return f"no Ollama server answers at {host} (OLLAMA_HOST): {type(exc).__name__}"
    return None


def create(model_name: str, folder: Path, parsed: dict[str, Any], host: str) -> None:
    """`ollama create model_name -f folder/Modelfile`, through the client (blob upload, then create)."""
    import ollama

    client = ollama.Client(host=host)
    gguf = folder / Path(parsed["FROM"]).name
    print(f"[export] ollama create {model_name}: uploading {gguf.name} to {host}", file=sys.stderr, flush=True)
    digest = client.create_blob(gguf)
    parameters: dict[str, Any] = {}
    for key, value in parsed["PARAMETER"]:
        if key == "stop":
            parameters.setdefault("stop", []).append(value)
        else:
            parameters[key] = float(value) if "." in value else int(value)
    client.create(model=model_name, files={gguf.name: digest}, template=parsed["TEMPLATE"],
                  system=parsed.get("SYSTEM"), parameters=parameters)


def command(model_name: str, folder: Path) -> str:
    return f"cd {folder} && ollama create {model_name} -f Modelfile"


def host() -> str:
    return ollama_host(None)
