"""Executes one notebook with nbclient and writes the executed copy: run-notebook.py IN OUT KERNEL [TIMEOUT].

The notebook runs in IN's folder; an error in a cell still writes OUT (with the error output) and exits 1.
"""
import sys
import time

import nbclient
import nbformat

src, dst, kernel = sys.argv[1:4]
timeout = int(sys.argv[4]) if len(sys.argv) > 4 else 900
nb = nbformat.read(src, as_version=4)
client = nbclient.NotebookClient(nb, kernel_name=kernel, timeout=timeout, resources={"metadata": {"path": src.rsplit("/", 1)[0]}})
start = time.time()
status = 0
try:
    client.execute()
except nbclient.exceptions.CellExecutionError as error:
    sys.stderr.write(str(error)[:4000] + "\n")
    status = 1
nbformat.write(nb, dst)
print(f"{time.time() - start:.1f}")
sys.exit(status)
