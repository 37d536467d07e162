"""jupyter_kernel_test's conformance suite against the know-the-unknown TypeScript kernel.

Run by test/kernel-conformance.test.ts with JUPYTER_PATH pointing at a freshly installed kernelspec
(KTU_KERNEL_NAME names it). Every check that 0.4.5 offers is switched on except the pager, which a
TypeScript kernel has no use for.
"""
import os
import unittest

import jupyter_kernel_test


class KtuKernelTests(jupyter_kernel_test.KernelTests):
    kernel_name = os.environ.get("KTU_KERNEL_NAME", "know-the-unknown")
    language_name = "typescript"
    file_extension = ".ts"

    code_hello_world = 'console.log("hello, world")'
    code_stderr = 'console.error("some error")'

    completion_samples = [
        {"text": "Math.ma", "matches": {"max"}},
        {"text": "const zebraLongName = 1; zebraLong", "matches": {"zebraLongName"}},
        # A name declared earlier in the same cell (the first request may come before the type
        # checker has loaded: it waits for it).
        {"text": "const someLongName = 1; someLong", "matches": {"someLongName"}},
        {"text": "let counterValue = 0;\nfunction bump() { return counterVa", "matches": {"counterValue"}},
        {"text": "[1, 2].fla", "matches": {"flat", "flatMap"}},
        # cursor_pos counts code points: the emoji is one, though two UTF-16 units in JavaScript.
        {"text": "const face = '\U0001F600'; Math.ma", "matches": {"max"}},
    ]

    complete_code_samples = ["1 + 1", "const a = 1;", "function f() { return 1 }", "", "// just a comment"]
    incomplete_code_samples = ["function f() {", "const xs = [1,\n 2,", "if (true) {\n  console.log(1)", "`unfinished ${1}"]
    invalid_code_samples = ["1 +* 2", "const = 5;", "let x = 'unterminated\nlet y = 2"]

    code_generate_error = 'throw new Error("planned failure")'

    code_execute_result = [
        {"code": "6 * 7", "result": "42"},
        {"code": "[1, 2, 3].map((x) => x * 2)", "result": "[ 2, 4, 6 ]"},
        {"code": "'a' + 'b'", "result": "'ab'"},
        {"code": "({ [Symbol.for('Jupyter.display')]: () => ({ 'text/html': '<b>bold</b>' }) })", "mime": "text/html", "result": "<b>bold</b>"},
    ]

    code_display_data = [
        {"code": 'display.html("<b>hi</b>")', "mime": "text/html"},
        {"code": 'display.markdown("# title")', "mime": "text/markdown"},
        {"code": 'display.png(new Uint8Array([137, 80, 78, 71]))', "mime": "image/png"},
        {"code": 'display.json({ a: 1 })', "mime": "application/json"},
        {"code": 'display.svg("<svg xmlns=\'http://www.w3.org/2000/svg\'></svg>")', "mime": "image/svg+xml"},
        {"code": 'import * as tslab from "tslab"; tslab.display.html("<i>tslab</i>")', "mime": "text/html"},
    ]

    code_history_pattern = "6 * 7"
    supported_history_operations = ("tail", "range", "search")

    code_inspect_sample = "Math.max"

    code_clear_output = "clearOutput()"


if __name__ == "__main__":
    unittest.main()
