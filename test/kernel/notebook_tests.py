"""nbclient executes test/fixtures/notebooks/every-output.ipynb on the kernel; nbconvert turns the
result into HTML. The executed notebook and the HTML are written to KTU_NOTEBOOK_OUT for the node
test that screenshots the HTML in Chromium.
"""
import json
import os
import unittest

import nbformat
from nbclient import NotebookClient
from nbconvert import HTMLExporter

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(HERE, "..", "fixtures", "notebooks")
FIXTURE = os.path.join(FIXTURES, "every-output.ipynb")
OUT = os.environ.get("KTU_NOTEBOOK_OUT", "/tmp")


def texts(output):
    data = output.get("data", {})
    return output.get("text", "") + data.get("text/plain", "")


class NotebookTests(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        nb = nbformat.read(FIXTURE, as_version=4)
        # Only the cell tagged raises-exception may fail; any other error fails the run.
        NotebookClient(nb, timeout=180, kernel_name=os.environ.get("KTU_KERNEL_NAME", "know-the-unknown"), resources={"metadata": {"path": FIXTURES}}).execute()
        nbformat.write(nb, os.path.join(OUT, "executed.ipynb"))
        cls.nb = nb
        cls.cells = nb.cells
        html, _ = HTMLExporter().from_notebook_node(nb)
        with open(os.path.join(OUT, "executed.html"), "w") as f:
            f.write(html)
        cls.html = html

    def outputs(self, index, output_type=None):
        return [o for o in self.cells[index].outputs if output_type is None or o.output_type == output_type]

    def test_execution_counts_are_saved(self):
        self.assertEqual([c.execution_count for c in self.cells], list(range(1, len(self.cells) + 1)))
        for cell in self.cells:
            for output in cell.outputs:
                if output.output_type == "execute_result":
                    self.assertEqual(output.execution_count, cell.execution_count)

    def test_streams(self):
        streams = {o.name: o.text for o in self.outputs(0, "stream")}
        self.assertEqual(streams, {"stdout": "hello from stdout\n", "stderr": "and from stderr\n"})

    def test_execute_result(self):
        self.assertEqual(self.outputs(1, "execute_result")[0].data["text/plain"], "42")
        self.assertEqual(self.outputs(13, "execute_result")[0].data["text/plain"], "43")
        # A relative import from the notebook's folder (the kernel's cwd).
        self.assertEqual(self.outputs(14, "execute_result")[0].data["text/plain"], "42")

    def test_rich_display(self):
        html, markdown = self.outputs(2, "display_data")
        self.assertEqual(html.data["text/html"], "<b>bold html</b>")
        self.assertEqual(markdown.data["text/markdown"], "**markdown** text")
        self.assertIn("<table>", self.outputs(4, "display_data")[0].data["text/html"])
        self.assertIn("<circle", self.outputs(6, "display_data")[0].data["image/svg+xml"])
        self.assertEqual(self.outputs(7, "execute_result")[0].data["text/html"], "<i>custom bundle</i>")
        self.assertEqual(self.outputs(9, "display_data")[0].data["text/html"], "<u>via tslab</u>")
        self.assertEqual(self.outputs(10, "execute_result")[0].data["text/plain"], "'function'")

    def test_updates_replace_outputs_in_place(self):
        self.assertEqual([texts(o) for o in self.outputs(3)], ["step 3"])
        bar = self.outputs(11)
        self.assertEqual(len(bar), 1)
        self.assertIn("5/5 (100%)", bar[0].data["text/plain"])

    def test_clear_output(self):
        self.assertEqual([texts(o) for o in self.outputs(8)], ["after clear\n"])

    def test_plotly_bundle(self):
        (plot,) = self.outputs(5, "display_data")
        figure = plot.data["application/vnd.plotly.v1+json"]
        self.assertEqual(figure["data"][0]["y"], [4, 1, 3, 2])
        self.assertIn("text/plain", plot.data)
        # No plotly.js and no HTML in outputs: the JSON for JupyterLab (jupyterlab-plotly) and VS Code,
        # the PNG (added in place before the reply) for classic Notebook, nbconvert and GitHub.
        self.assertNotIn("text/html", plot.data)
        if os.path.exists("/usr/bin/chromium"):
            self.assertGreater(len(plot.data["image/png"]), 1000)
        sizes = [len(json.dumps(o)) for c in self.cells for o in c.outputs]
        self.assertLess(sum(sizes), 200_000)

    def test_error_output(self):
        (error,) = self.outputs(12, "error")
        self.assertEqual(error.ename, "TypeError")
        self.assertEqual(error.evalue, "expected failure")
        self.assertTrue(any("cell" in line and "line 1" in line for line in error.traceback), error.traceback)

    def test_html_has_the_figure(self):
        # nbconvert shows the figure as its PNG (plotly.js is not in the notebook to draw it).
        if os.path.exists("/usr/bin/chromium"):
            self.assertTrue('src="data:image/png;base64,' in self.html, "no PNG in nbconvert's HTML")
        self.assertFalse("cdn.plot.ly" in self.html or "Plotly.newPlot" in self.html, "plotly.js in nbconvert's HTML")
        self.assertTrue("<b>bold html</b>" in self.html)


if __name__ == "__main__":
    unittest.main()
