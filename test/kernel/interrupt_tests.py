"""Interrupts as JupyterLab sends them (SIGINT to the kernel's process group, through jupyter_client's
KernelManager.interrupt_kernel), in each state a cell can be in, in one kernel that has displayed a
plotly figure first (so the headless browser that renders PNGs is up: the setting in which an
interrupt used to kill the kernel). Each case checks the KeyboardInterrupt reply, its latency, that
the kernel is alive and that its variables stay. Latencies are printed as `# latency NAME: S s`.

Run by test/kernel-interrupt.test.ts with JUPYTER_PATH pointing at a freshly installed kernelspec.
"""
import json
import os
import tempfile
import time
import unittest

from client_tests import TIMEOUT, outputs_of, reply_to, run, start, value, wait_for_file, wait_until_running

FIGURE = '{ data: [{ type: "scatter", mode: "lines", x: [1, 2, 3], y: [3, 1, 2] }], layout: { title: { text: "first" }, width: 400, height: 300 } }'


def report(name, seconds):
    print(f"# latency {name}: {seconds:.3f} s", flush=True)


class InterruptTests(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.log = tempfile.NamedTemporaryFile(prefix="ktu-kernel-log-", delete=False)
        cls.km, cls.kc = start(stderr=cls.log)
        cls.dir = tempfile.mkdtemp()
        assert value(cls.kc, "let kept = 'state'; let steps = 0; kept") == "'state'"
        # The first figure: its JSON at once, its PNG as an update from the (now started) browser.
        t0 = time.monotonic()
        msg_id = cls.kc.execute(f"const plot = display.plotly({FIGURE})")
        first = None
        png = None
        while png is None:
            msg = cls.kc.get_iopub_msg(timeout=TIMEOUT)
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            if msg["msg_type"] == "display_data" and first is None:
                first = time.monotonic() - t0
                cls.first_data = msg["content"]["data"]
            if msg["msg_type"] == "update_display_data" and "image/png" in msg["content"]["data"]:
                png = time.monotonic() - t0
        report("first figure shown", first)
        report("first figure's PNG", png)
        cls.first_seconds = first
        assert reply_to(cls.kc, msg_id)["content"]["status"] == "ok"

    @classmethod
    def tearDownClass(cls):
        cls.kc.stop_channels()
        cls.km.shutdown_kernel(now=True)

    def interrupt_and_check(self, name, msg_id, limit, ename="KeyboardInterrupt"):
        t0 = time.monotonic()
        self.km.interrupt_kernel()
        reply = reply_to(self.kc, msg_id)["content"]
        latency = time.monotonic() - t0
        report(name, latency)
        self.assertEqual(reply["status"], "error", reply)
        self.assertEqual(reply["ename"], ename)
        self.assertLess(latency, limit, f"{name}: the reply took {latency:.2f} s")
        self.assertTrue(self.km.is_alive())
        self.assertEqual(value(self.kc, "kept"), "'state'")
        return latency

    def test_00_first_figure_is_fast_and_small(self):
        self.assertLess(self.first_seconds, 2.0)
        self.assertEqual(sorted(self.first_data), ["application/vnd.plotly.v1+json", "text/plain"])
        self.assertLess(len(json.dumps(self.first_data)), 2000)

    def test_01_kernel_info_says_no_debugger(self):
        # JupyterLab asks for a debugger session unless kernel_info says there is none.
        msg_id = self.kc.kernel_info()
        self.assertIs(reply_to(self.kc, msg_id)["content"]["debugger"], False)

    def test_awaiting_a_timer(self):
        msg_id = self.kc.execute("await new Promise((r) => setTimeout(r, 60_000)); kept = 'changed'")
        wait_until_running(self.kc, msg_id)
        time.sleep(0.3)
        self.interrupt_and_check("awaiting a timer", msg_id, 1.0)

    def test_for_await_over_a_generator_that_computes(self):
        # Each step computes for 0.5 s without yielding to the event loop: only microtasks between steps.
        marker = os.path.join(self.dir, "step1")
        code = f"""
import {{ writeFileSync }} from 'node:fs';
async function* work() {{
  for (let i = 1; i <= 40; i++) {{
    const until = Date.now() + 500; while (Date.now() < until) {{}}
    yield i;
  }}
}}
for await (const i of work()) {{ steps = i; if (i === 1) writeFileSync({json.dumps(marker)}, ''); }}
"""
        msg_id = self.kc.execute(code)
        wait_for_file(marker)
        self.interrupt_and_check("for await, 0.5 s steps", msg_id, 1.5)
        done = int(value(self.kc, "steps"))
        self.assertLessEqual(done, 3, "the loop went on after the interrupt")
        time.sleep(1.2)
        self.assertEqual(int(value(self.kc, "steps")), done, "the generator went on in the background")

    def test_tfjs_ops_inside_steps(self):
        marker = os.path.join(self.dir, "tf1")
        code = f"""
import {{ writeFileSync }} from 'node:fs';
import {{ initBackend }} from 'know-the-unknown';
import * as tf from '@tensorflow/tfjs-core';
await initBackend();
const a = tf.randomNormal([256, 256]);
async function* matmuls() {{
  for (let i = 1; i <= 1000; i++) {{
    const t0 = Date.now();
    while (Date.now() - t0 < 300) tf.tidy(() => tf.matMul(a, a).dataSync());
    yield i;
  }}
}}
for await (const i of matmuls()) {{ steps = i; if (i === 1) writeFileSync({json.dumps(marker)}, ''); }}
"""
        msg_id = self.kc.execute(code)
        wait_for_file(marker)
        self.interrupt_and_check("TF.js ops, 0.3 s steps", msg_id, 1.5)

    def test_writing_output(self):
        marker = os.path.join(self.dir, "printing")
        code = f"""
import {{ writeFileSync }} from 'node:fs';
writeFileSync({json.dumps(marker)}, '');
for (let i = 0; ; i++) {{ console.log('line ' + i); if (i % 100 === 0) await null; }}
"""
        msg_id = self.kc.execute(code)
        wait_for_file(marker)
        time.sleep(0.3)
        self.interrupt_and_check("writing output", msg_id, 1.0)

    def test_during_png_renders(self):
        # A figure updated in a loop: PNG renders are in flight in the browser when the SIGINT comes.
        code = """
const live = display.plotly({ data: [{ type: "scatter", x: [0], y: [0] }] });
for (let i = 1; ; i++) {
  const xs = Array.from({ length: 20_000 }, (_, k) => k);
  live.update({ data: [{ type: "scattergl", mode: "markers", x: xs, y: xs.map((x) => Math.sin(x / 50 + i)) }] });
  await new Promise((r) => setTimeout(r, 50));
}
"""
        msg_id = self.kc.execute(code)
        seen = 0
        while seen < 2:  # the figure, then at least one PNG update: the browser is busy
            msg = self.kc.get_iopub_msg(timeout=TIMEOUT)
            if msg["parent_header"].get("msg_id") == msg_id and msg["msg_type"] in ("display_data", "update_display_data"):
                seen += 1
        # Each step builds and sends a 20,000-point figure: "within one step" is what is asked here
        # (0.03 s alone, 0.9 s measured with the whole suite running on 2 cores).
        self.interrupt_and_check("during PNG renders", msg_id, 2.0)
        # The browser survived: the next figure still gets its PNG.
        msg_id = self.kc.execute(f"display.plotly({FIGURE})")
        self.assertEqual(reply_to(self.kc, msg_id)["content"]["status"], "ok")
        outputs = outputs_of(self.kc, msg_id)
        self.assertTrue(any("image/png" in m["content"].get("data", {}) for m in outputs if m["msg_type"] == "update_display_data"), outputs)

    @unittest.skip(
        "known bug (2026-12-06): two SIGINTs ~1 ms apart into a synchronous loop end the kernel in about 1 run "
        "of 6 under load. Node's vm takes the process's SIGINT listeners off while a breakOnSigint script runs "
        "and puts them back only after its watchdog has stopped and left Node's exit-on-SIGINT handler in "
        "place; a second SIGINT in that gap exits. Fix: a launcher in its own process group that coalesces "
        "SIGINTs, or a signal handle that is never taken off."
    )
    def test_twice_in_a_row_in_a_synchronous_loop(self):
        value(self.kc, "let spins = 0")
        marker = os.path.join(self.dir, "spinning")
        msg_id = self.kc.execute(f"import {{ writeFileSync }} from 'node:fs'; writeFileSync({json.dumps(marker)}, ''); while (true) {{ spins++ }}")
        wait_for_file(marker)
        self.km.interrupt_kernel()
        self.interrupt_and_check("second of two SIGINTs", msg_id, 1.0)

    def test_twice_in_a_row(self):
        # A running cell that awaits, interrupted twice.
        msg_id = self.kc.execute("await new Promise((r) => setTimeout(r, 60_000))")
        wait_until_running(self.kc, msg_id)
        time.sleep(0.2)
        self.km.interrupt_kernel()
        self.interrupt_and_check("awaiting, two SIGINTs", msg_id, 1.0)

    def test_with_no_cell_running(self):
        for _ in range(3):
            self.km.interrupt_kernel()
            time.sleep(0.2)
        self.assertTrue(self.km.is_alive())
        self.assertEqual(value(self.kc, "kept"), "'state'")
        content, _ = run(self.kc, "1 + 1")
        self.assertEqual(content["status"], "ok")

    def test_library_handlers_and_exit_cannot_end_the_kernel(self):
        # What Emscripten's glue does (rethrow from its own listeners), then a library's process.exit.
        code = """
process.on("unhandledRejection", (reason) => { throw reason; });
process.on("uncaughtException", (error) => { throw error; });
void Promise.reject(new Error("a floating rejection"));
setTimeout(() => { throw new Error("a throw from a timer"); }, 0);
await new Promise((r) => setTimeout(r, 100));
let exitError = "";
try { process.exit(130); } catch (error) { exitError = (error as Error).message; }
exitError
"""
        self.assertIn("refused", value(self.kc, code))
        self.assertTrue(self.km.is_alive())
        self.assertEqual(value(self.kc, "kept"), "'state'")


if __name__ == "__main__":
    unittest.main()
