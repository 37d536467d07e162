/**
 * The stand-in hub as a process, for checks from outside the test suite:
 *   node --import tsx test/helpers/fake-hub-cli.ts --repo ORG/NAME=DIR [--repo ...] [--gated ORG/NAME=TOKEN]
 *     [--private ORG/NAME=TOKEN] [--drop FILE:BYTES]
 * prints `url <http://127.0.0.1:PORT> commit <sha>` and serves until killed. Then e.g.
 *   HF_ENDPOINT=<url> HF_HOME=/tmp/hf ktu generate --model hf:ORG/NAME --prompt "Once" --steps 40 --temperature 0
 */
import { parseArgs } from "node:util";
import { startFakeHub, type FakeRepo } from "./fake-hub.ts";

const { values } = parseArgs({
  options: { repo: { type: "string", multiple: true }, gated: { type: "string", multiple: true }, private: { type: "string", multiple: true }, drop: { type: "string", multiple: true } },
});
const repos: Record<string, FakeRepo> = {};
const pairs = (list: string[] | undefined) => (list ?? []).map((s) => [s.slice(0, s.indexOf("=")), s.slice(s.indexOf("=") + 1)] as const);
for (const [name, dir] of pairs(values.repo)) repos[name] = { dir };
for (const [name, token] of pairs(values.gated)) Object.assign(repos[name]!, { gated: true, token });
for (const [name, token] of pairs(values.private)) Object.assign(repos[name]!, { token });
const hub = await startFakeHub(repos);
for (const d of values.drop ?? []) {
  const [file, bytes] = d.split(":");
  hub.dropOnce(file!, Number(bytes));
}
process.stdout.write(`url ${hub.url} commit ${hub.commit}\n`);
process.on("SIGTERM", () => void hub.close().then(() => process.exit(0)));
