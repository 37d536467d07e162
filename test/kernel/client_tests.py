"""The know-the-unknown kernel driven by jupyter_client, as a frontend drives it.

Run by test/kernel-client.test.ts with JUPYTER_PATH pointing at a freshly installed kernelspec named
by KTU_KERNEL_NAME. Waits are on messages, never on sleeps.
"""
import json
import os
import subprocess
import tempfile
import time
import unittest
import uuid

import zmq
from jupyter_client.manager import KernelManager
from jupyter_client.session import Session

KERNEL = os.environ.get("KTU_KERNEL_NAME", "know-the-unknown")
TIMEOUT = 60


def start(env=None, stderr=None):
    km = KernelManager(kernel_name=KERNEL)
    km.start_kernel(env={**os.environ, **(env or {})}, stderr=stderr)
    kc = km.client()
    kc.start_channels()
    kc.wait_for_ready(timeout=TIMEOUT)
    return km, kc


def reply_to(kc, msg_id, channel="shell"):
    """The reply to msg_id, skipping replies to anything else."""
    get = kc.get_shell_msg if channel == "shell" else kc.get_control_msg
    while True:
        msg = get(timeout=TIMEOUT)
        if msg["parent_header"].get("msg_id") == msg_id:
            return msg


def outputs_of(kc, msg_id):
    """The iopub messages of one request, up to its idle status."""
    out = []
    while True:
        msg = kc.get_iopub_msg(timeout=TIMEOUT)
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        if msg["msg_type"] == "status":
            if msg["content"]["execution_state"] == "idle":
                return out
            continue
        out.append(msg)


def run(kc, code, **kwargs):
    msg_id = kc.execute(code, **kwargs)
    reply = reply_to(kc, msg_id)
    return reply["content"], outputs_of(kc, msg_id)


def value(kc, code):
    content, outputs = run(kc, code)
    assert content["status"] == "ok", content
    results = [m["content"]["data"]["text/plain"] for m in outputs if m["msg_type"] == "execute_result"]
    return results[0] if results else None


def wait_until_running(kc, msg_id):
    """Returns once the kernel has published execute_input for msg_id: the cell is running."""
    while True:
        msg = kc.get_iopub_msg(timeout=TIMEOUT)
        if msg["parent_header"].get("msg_id") == msg_id and msg["msg_type"] == "execute_input":
            return


def wait_for_file(path):
    deadline = time.monotonic() + TIMEOUT
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise AssertionError(f"{path} never appeared")
        time.sleep(0.005)


class SessionTests(unittest.TestCase):
    """One kernel for the checks that do not need a fresh one."""

    @classmethod
    def setUpClass(cls):
        cls.km, cls.kc = start()

    @classmethod
    def tearDownClass(cls):
        cls.kc.stop_channels()
        cls.km.shutdown_kernel(now=True)

    def test_interrupt_sync_loop_by_signal(self):
        self.assertEqual(value(self.kc, "let kept = 'state'; let spins = 0; kept"), "'state'")
        # The cell leaves a file right before its endless loop; the interrupt goes once it exists.
        marker = os.path.join(tempfile.mkdtemp(), "looping")
        # The import is loaded before the cell runs, so the loop still runs under breakOnSigint.
        msg_id = self.kc.execute(f"import {{ writeFileSync }} from 'node:fs'; writeFileSync({json.dumps(marker)}, ''); while (true) {{ spins++ }}")
        wait_until_running(self.kc, msg_id)
        wait_for_file(marker)
        self.km.interrupt_kernel()  # the kernelspec says signal: SIGINT
        reply = reply_to(self.kc, msg_id)["content"]
        self.assertEqual(reply["status"], "error")
        self.assertEqual(reply["ename"], "KeyboardInterrupt")
        self.assertTrue(self.km.is_alive())
        self.assertEqual(value(self.kc, "kept"), "'state'")
        self.assertEqual(value(self.kc, "spins > 0"), "true")

    def test_interrupt_async_loop_by_message(self):
        value(self.kc, "let ticks = 0; const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))")
        msg_id = self.kc.execute("while (true) { await sleep(5); ticks++ }")
        wait_until_running(self.kc, msg_id)
        interrupt = self.kc.session.msg("interrupt_request", {})
        self.kc.control_channel.send(interrupt)
        self.assertEqual(reply_to(self.kc, interrupt["header"]["msg_id"], "control")["content"]["status"], "ok")
        reply = reply_to(self.kc, msg_id)["content"]
        self.assertEqual(reply["ename"], "KeyboardInterrupt")
        # The abandoned loop must not go on in the background: it stopped at its next await.
        before = value(self.kc, "ticks")
        value(self.kc, "await sleep(60)")
        self.assertEqual(value(self.kc, "ticks"), before)

    def test_stop_on_error_aborts_queued_cells(self):
        first = self.kc.execute("await new Promise((r) => setTimeout(r, 100)); throw new Error('first fails')")
        second = self.kc.execute("globalThis.ranAfterError = true")
        third = self.kc.execute("1 + 1")
        self.assertEqual(reply_to(self.kc, first)["content"]["status"], "error")
        self.assertEqual(reply_to(self.kc, second)["content"]["status"], "aborted")
        self.assertEqual(reply_to(self.kc, third)["content"]["status"], "aborted")
        self.assertEqual(value(self.kc, "typeof (globalThis as any).ranAfterError"), "'undefined'")
        # stop_on_error=False (what nbclient sends with allow_errors) runs the next cell.
        failing = self.kc.execute("throw new Error('x')", stop_on_error=False)
        after = self.kc.execute("'ran'")
        self.assertEqual(reply_to(self.kc, failing)["content"]["status"], "error")
        self.assertEqual(reply_to(self.kc, after)["content"]["status"], "ok")

    def test_thousand_failing_cells(self):
        codes = ["throw new Error('fail')", "throw 'a string'", "throw null", "throw { code: 7 }", "undefinedName + 1", "Promise.reject(new Error('floating'))"]
        ids = [self.kc.execute(codes[i % len(codes)], stop_on_error=False) for i in range(1000)]
        statuses = [reply_to(self.kc, i)["content"] for i in ids]
        errors = [s for s in statuses if s["status"] == "error"]
        self.assertGreaterEqual(len(errors), 830)
        self.assertEqual({s["ename"] for s in errors}, {"Error", "Uncaught", "TSError"})
        self.assertTrue(all(s["status"] in ("ok", "error") for s in statuses))
        self.assertEqual(value(self.kc, "'still answering'"), "'still answering'")

    def test_execute_flags(self):
        before = value(self.kc, "'count'")
        content, outputs = run(self.kc, "console.log('quiet'); 5", silent=True)
        self.assertEqual(content["status"], "ok")
        self.assertEqual(outputs, [])
        content, _ = run(self.kc, "1", store_history=False)
        count = content["execution_count"]
        content, _ = run(self.kc, "2")
        self.assertEqual(content["execution_count"], count + 1)
        content, _ = run(self.kc, "const base = 20", user_expressions={"double": "base * 2", "bad": "nope("})
        self.assertEqual(content["user_expressions"]["double"]["data"]["text/plain"], "40")
        self.assertEqual(content["user_expressions"]["bad"]["status"], "error")
        self.assertIsNotNone(before)

    def test_stdin_input(self):
        msg_id = self.kc.execute("const answer = await input('name? '); answer.toUpperCase()", allow_stdin=True)
        request = self.kc.get_stdin_msg(timeout=TIMEOUT)
        self.assertEqual(request["msg_type"], "input_request")
        self.assertEqual(request["content"]["prompt"], "name? ")
        self.kc.input("ada")
        self.assertEqual(reply_to(self.kc, msg_id)["content"]["status"], "ok")
        results = [m for m in outputs_of(self.kc, msg_id) if m["msg_type"] == "execute_result"]
        self.assertEqual(results[0]["content"]["data"]["text/plain"], "'ADA'")
        content, _ = run(self.kc, "await input('x')", allow_stdin=False)
        self.assertEqual(content["status"], "error")

    def test_comms(self):
        value(self.kc, "comms.registerTarget('echo', (comm) => { comm.onMsg = (data) => comm.send({ echoed: data }) })")
        comm_id = str(uuid.uuid4())
        self.kc.shell_channel.send(self.kc.session.msg("comm_open", {"comm_id": comm_id, "target_name": "echo", "data": {}}))
        info = self.kc.session.msg("comm_info_request", {"target_name": "echo"})
        self.kc.shell_channel.send(info)
        comms = reply_to(self.kc, info["header"]["msg_id"])["content"]["comms"]
        self.assertEqual(comms, {comm_id: {"target_name": "echo"}})
        self.kc.shell_channel.send(self.kc.session.msg("comm_msg", {"comm_id": comm_id, "data": {"n": 3}}))
        while True:
            msg = self.kc.get_iopub_msg(timeout=TIMEOUT)
            if msg["msg_type"] == "comm_msg":
                self.assertEqual(msg["content"], {"comm_id": comm_id, "data": {"echoed": {"n": 3}}})
                break

    def test_type_errors_name_cell_lines(self):
        content, outputs = run(self.kc, "const ok = 1;\nconst bad: string = ok;")
        self.assertEqual(content["ename"], "TSError")
        self.assertIn("line 2", content["evalue"])
        self.assertEqual([m["msg_type"] for m in outputs if m["msg_type"] != "execute_input"], ["error"])
        content, _ = run(self.kc, "function deep(): never {\n  throw new RangeError('r')\n}\ndeep()")
        self.assertIn("line 2", "\n".join(content["traceback"]))


class BadInputTests(unittest.TestCase):
    """Forged, unsigned, malformed, unknown and oversized messages, on one raw DEALER socket so that
    the kernel sees them in order; the last, valid message proves none of the others ran."""

    def test_bad_messages_are_dropped_and_logged(self):
        marker = os.path.join(tempfile.mkdtemp(), "executed")
        log = tempfile.TemporaryFile()
        km, kc = start(env={"KTU_KERNEL_MAX_MESSAGE_BYTES": "1000000"}, stderr=log)
        try:
            info = km.get_connection_info()
            good = Session(key=info["key"], signature_scheme="hmac-sha256")
            forged = Session(key=b"not-the-key", signature_scheme="hmac-sha256")
            unsigned = Session(key=b"")
            ctx = zmq.Context.instance()
            sock = ctx.socket(zmq.DEALER)
            sock.setsockopt(zmq.RCVTIMEO, TIMEOUT * 1000)
            sock.connect(f"tcp://{info['ip']}:{info['shell_port']}")
            write = f"import {{ writeFileSync }} from 'node:fs'; writeFileSync({json.dumps(marker)}, 'x')"
            forged.send(sock, "execute_request", {"code": write, "silent": False, "store_history": True, "user_expressions": {}, "allow_stdin": False, "stop_on_error": True})
            unsigned.send(sock, "execute_request", {"code": write, "silent": False, "store_history": True, "user_expressions": {}, "allow_stdin": False, "stop_on_error": True})
            # Signed correctly, but the header is not JSON.
            parts = [b"{not json", b"{}", b"{}", b"{}"]
            sock.send_multipart([b"<IDS|MSG>", good.sign(parts)] + parts)
            sock.send_multipart([b"garbage", b"no delimiter"])
            good.send(sock, "no_such_request", {})
            # Oversized: zeromq's maxMessageSize refuses it and disconnects that peer, so it goes on its own socket.
            big_sock = ctx.socket(zmq.DEALER)
            big_sock.connect(f"tcp://{info['ip']}:{info['shell_port']}")
            big = write + "; // " + "x" * 2_000_000
            good.send(big_sock, "execute_request", {"code": big, "silent": False, "store_history": True, "user_expressions": {}, "allow_stdin": False, "stop_on_error": True})
            time.sleep(0.5)
            big_sock.close(0)
            check = good.send(sock, "execute_request", {"code": "throw 'a non-Error value'", "silent": False, "store_history": True, "user_expressions": {}, "allow_stdin": False, "stop_on_error": False})
            _, reply = good.recv(sock, mode=0)
            self.assertEqual(reply["parent_header"]["msg_id"], check["header"]["msg_id"])
            self.assertEqual(reply["content"]["ename"], "Uncaught")
            self.assertFalse(os.path.exists(marker), "a forged, unsigned or oversized message was executed")
            self.assertEqual(value(kc, "1 + 1"), "2")
            sock.close(0)
        finally:
            kc.stop_channels()
            km.shutdown_kernel(now=True)
        log.seek(0)
        text = log.read().decode()
        self.assertEqual(text.count("bad signature"), 2, text)
        self.assertIn("header is not JSON", text)
        self.assertIn("no <IDS|MSG> delimiter", text)
        self.assertIn('unknown msg_type "no_such_request"', text)
        self.assertNotIn("limit 1000000 bytes", text, "zeromq refused the oversized frame before the kernel read it")


class RestartTests(unittest.TestCase):
    def test_restart_gives_a_fresh_kernel(self):
        km, kc = start()
        try:
            value(kc, "const survivor = 1")
            pid = km.provisioner.pid if hasattr(km, "provisioner") else None
            km.restart_kernel(now=False)
            kc.wait_for_ready(timeout=TIMEOUT)
            self.assertTrue(km.is_alive())
            if pid is not None:
                self.assertNotEqual(km.provisioner.pid, pid)
            # eval: the type checker rightly knows no `survivor` in the new kernel; the runtime is asked.
            self.assertEqual(value(kc, "eval('typeof survivor')"), "'undefined'")
            content, _ = run(kc, "1 + 1")
            self.assertEqual(content["execution_count"], 2)
        finally:
            kc.stop_channels()
            km.shutdown_kernel(now=True)


if __name__ == "__main__":
    unittest.main()
