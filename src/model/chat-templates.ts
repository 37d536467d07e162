import { Template as JinjaTemplate } from "@huggingface/jinja";
import type { Tokenizer } from "./tokenizer.ts";

/**
 * Chat templates as LLaMA-Factory defines them (src/llamafactory/data/template.py, 0.9.x): each role
 * has a list of slots (text with {{content}}, or the BOS/EOS token), and training encodes every slot
 * separately (`tokenizer.encode(text, add_special_tokens=False)`), so prompt and response token
 * boundaries are exactly LLaMA-Factory's. `chatTemplateJinja` gives the same layout as a Jinja
 * template (as LLaMA-Factory writes into tokenizer_config.json) for prompt strings at inference time.
 */
export type Slot = string | { special: "bos" | "eos" } | { token: string };

export interface ChatTemplateSpec {
  readonly name: string;
  readonly user: readonly Slot[];
  readonly assistant: readonly Slot[];
  readonly system: readonly Slot[];
  readonly separator: readonly Slot[];
  readonly prefix: readonly Slot[];
  readonly defaultSystem: string;
  /** The first one replaces EOS when `replaceEos` (llama3's <|eot_id|>, qwen's <|im_end|>). */
  readonly stopWords: readonly string[];
  readonly replaceEos: boolean;
  /** llama2-style: the system text is put inside the first user turn. */
  readonly systemInFirstUser: boolean;
}

const bos = { special: "bos" } as const;
const eos = { special: "eos" } as const;

function define(spec: Partial<ChatTemplateSpec> & { name: string }): ChatTemplateSpec {
  return Object.freeze({
    user: ["{{content}}"],
    assistant: ["{{content}}", eos],
    system: ["{{content}}"],
    separator: [],
    prefix: [],
    defaultSystem: "",
    stopWords: [],
    replaceEos: false,
    systemInFirstUser: spec.name.startsWith("llama2"),
    ...spec,
  });
}

export const chatTemplates: Readonly<Record<string, ChatTemplateSpec>> = Object.freeze({
  empty: define({ name: "empty", assistant: ["{{content}}"] }),
  default: define({ name: "default", user: ["Human: {{content}}\nAssistant:"], system: ["{{content}}\n"], separator: ["\n"] }),
  alpaca: define({
    name: "alpaca",
    user: ["### Instruction:\n{{content}}\n\n### Response:\n"],
    separator: ["\n\n"],
    defaultSystem: "Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n",
  }),
  llama2: define({ name: "llama2", user: [bos, "[INST] {{content}} [/INST]"], system: ["<<SYS>>\n{{content}}\n<</SYS>>\n\n"] }),
  llama3: define({
    name: "llama3",
    user: ["<|start_header_id|>user<|end_header_id|>\n\n{{content}}<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"],
    system: ["<|start_header_id|>system<|end_header_id|>\n\n{{content}}<|eot_id|>"],
    prefix: [bos],
    stopWords: ["<|eot_id|>"],
    replaceEos: true,
  }),
  mistral: define({ name: "mistral", user: ["[INST] {{content}} [/INST]"], prefix: [bos] }),
  qwen: define({
    name: "qwen",
    user: ["<|im_start|>user\n{{content}}<|im_end|>\n<|im_start|>assistant\n"],
    system: ["<|im_start|>system\n{{content}}<|im_end|>\n"],
    separator: ["\n"],
    defaultSystem: "You are a helpful assistant.",
    stopWords: ["<|im_end|>"],
    replaceEos: true,
  }),
});

export function getChatTemplate(name: string): ChatTemplateSpec {
  const t = chatTemplates[name];
  if (!t) throw new Error(`unknown chat template ${JSON.stringify(name)}; known: ${Object.keys(chatTemplates).join(", ")}`);
  return t;
}

export interface ChatMessage {
  readonly role: "user" | "assistant";
  readonly content: string;
}

/** A tokenizer that can also look up a special token's id (Hugging Face tokenizers can). */
type TemplateTokenizer = Tokenizer & { tokenToId?(token: string): number | undefined };

/** The EOS id the template trains with: its first stop word when it replaces EOS. */
export function templateEosId(template: ChatTemplateSpec, tokenizer: TemplateTokenizer): number {
  if (!template.replaceEos) return tokenizer.eosId;
  const id = tokenizer.tokenToId?.(template.stopWords[0]!);
  if (id === undefined) throw new Error(`chat template ${template.name} ends turns with ${template.stopWords[0]}, which this tokenizer does not have as one token`);
  return id;
}

function slotIds(slots: readonly Slot[], content: string, tokenizer: TemplateTokenizer, eosId: number): number[] {
  const ids: number[] = [];
  for (const slot of slots) {
    if (typeof slot === "string") {
      const text = slot.split("{{content}}").join(content);
      if (text.length > 0) ids.push(...tokenizer.encode(text, { bos: false, eos: false }));
    } else if ("special" in slot) {
      ids.push(slot.special === "bos" ? tokenizer.bosId : eosId);
    } else {
      const id = tokenizer.tokenToId?.(slot.token);
      if (id === undefined) throw new Error(`token ${slot.token} is not in the tokenizer`);
      ids.push(id);
    }
  }
  return ids;
}

/**
 * LLaMA-Factory's Template._encode / encode_multiturn: one [prompt ids, response ids] pair per
 * user/assistant turn. `messages` alternate user, assistant, starting with user.
 */
export function encodeChatTurns(template: ChatTemplateSpec, tokenizer: TemplateTokenizer, messages: readonly ChatMessage[], system?: string): [number[], number[]][] {
  const eosId = templateEosId(template, tokenizer);
  const sys = system || template.defaultSystem;
  const encoded: number[][] = [];
  messages.forEach((message, i) => {
    const expected = i % 2 === 0 ? "user" : "assistant";
    if (message.role !== expected) throw new Error(`chat message ${i} should be ${expected}, got ${message.role}`);
    const ids: number[] = [];
    let content = message.content;
    if (i === 0) {
      ids.push(...slotIds(template.prefix, "", tokenizer, eosId));
      if (sys) {
        if (template.systemInFirstUser) content = renderSlotsText(template.system, sys) + content;
        else ids.push(...slotIds(template.system, sys, tokenizer, eosId));
      }
    }
    if (i > 0 && i % 2 === 0) ids.push(...slotIds(template.separator, "", tokenizer, eosId));
    ids.push(...slotIds(message.role === "user" ? template.user : template.assistant, content, tokenizer, eosId));
    encoded.push(ids);
  });
  const pairs: [number[], number[]][] = [];
  for (let i = 0; i < encoded.length; i += 2) pairs.push([encoded[i]!, encoded[i + 1] ?? []]);
  return pairs;
}

/** Only the text slots, joined: the system block llama2 inlines into the first user message. */
function renderSlotsText(slots: readonly Slot[], content: string): string {
  return slots.filter((s): s is string => typeof s === "string").map((s) => s.split("{{content}}").join(content)).join("");
}

const jinjaQuote = (text: string): string => "'" + text.replace(/\\/g, "\\\\").replace(/'/g, "\\'").replace(/\n/g, "\\n") + "'";

function slotsToJinja(slots: readonly Slot[], placeholder: string): string {
  const items: string[] = [];
  for (const slot of slots) {
    if (typeof slot === "string") {
      const parts = slot.split("{{content}}");
      parts.forEach((part, i) => {
        if (i > 0) items.push(placeholder);
        if (part) items.push(jinjaQuote(part));
      });
    } else if ("special" in slot) items.push(slot.special === "bos" ? "bos_token" : "eos_token");
    else items.push(jinjaQuote(slot.token));
  }
  return items.join(" + ");
}

/** The template as Jinja, in the shape of LLaMA-Factory's _get_jinja_template. */
export function chatTemplateJinja(template: ChatTemplateSpec): string {
  let j = "";
  const prefix = slotsToJinja(template.prefix, "content");
  if (prefix) j += `{{ ${prefix} }}`;
  if (template.defaultSystem) j += `{% set system_message = ${jinjaQuote(template.defaultSystem)} %}`;
  j += "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}{% set system_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}{% endif %}";
  const system = slotsToJinja(template.system, "system_message");
  if (!template.systemInFirstUser) j += `{% if system_message is defined %}{{ ${system} }}{% endif %}`;
  j += "{% for message in loop_messages %}{% set content = message['content'] %}";
  if (template.systemInFirstUser) j += `{% if loop.index0 == 0 and system_message is defined %}{% set content = ${system} + message['content'] %}{% endif %}`;
  j += `{% if message['role'] == 'user' %}{{ ${slotsToJinja(template.user, "content")} }}`;
  j += `{% elif message['role'] == 'assistant' %}{{ ${slotsToJinja([...template.assistant, ...template.separator], "content")} }}{% endif %}{% endfor %}`;
  return j;
}

/** Renders messages (optionally led by a system message) to the prompt string, through @huggingface/jinja. */
export function renderChat(template: ChatTemplateSpec, messages: readonly { role: string; content: string }[], tokens: { bos: string; eos: string }): string {
  const eosToken = template.replaceEos ? template.stopWords[0]! : tokens.eos;
  return new JinjaTemplate(chatTemplateJinja(template)).render({ messages: [...messages], bos_token: tokens.bos, eos_token: eosToken });
}

/** LLaMA-Factory's Alpaca conversion: the user turn is instruction, then "\n" and input when there is one. */
export function alpacaPrompt(instruction: string, input?: string): string {
  return [instruction, input].filter((part) => part !== undefined && part !== "").join("\n");
}
