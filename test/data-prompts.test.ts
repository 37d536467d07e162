import assert from "node:assert/strict";
import { test } from "node:test";
import {
  evalPrompt,
  gemmaChatPrompt,
  llama2ChatPrompt,
  llama2ValidationPrompt,
  llama3ChatPrompt,
  mistralChatPrompt,
  normalPrompt,
  TASK_ASSIGNMENT,
  taskCognitionPrompt,
  taskPromptPrompt,
  taskQaPrompt,
  vicunaChatPrompt,
  type InstructionSlot,
} from "../src/data/prompts.ts";

// The templates below are copied, as literal strings, from docs/paper.md (§1.2, §1.3, §3.1),
// rendered with their placeholders ({query}, {context}, {question}, {INSTRUCTION}).
const TASK_COGNITION = "Cognition Assessment Task: You need to do the Cognition Assessment Task for the following query and context. I will give a query and a related context about the query. Your task is to judge whether the context is sufficient to answer the query. You must append either '<Sufficient>' or '<Insufficient>' after your answer. Your answer must not using any additional knowledge that is not mentioned in the given contexts.If the context is not sufficient to answer the question, please append the '<Insufficient>' after your answer.\n\nHere is the example.\n\n QUERY:\n What happened to Jay Chou when he got old?\nCONTEXT:\n Jay Chou was the most famous singer in China when he was young, releasing many nostalgic albums and songs that are memorable to middle-aged people today.\nANSWER: \nJay Chou was the most famous singer in China.<Insufficient>\n\nHere is one query that you need to accomplish, you should only output one answer to it, and stop generating more queries:\n\nQUERY:\n {query}\nCONTEXT:\n {context}\nANSWER: \n";
const TASK_PROMPT_SLOT0 = "You should check whether your answer aligned the requirement by generating a Checking part, checking each sentence of the above instruction, with either <fulfilled> or <not fulfilled> mark behind the sentence, indicating whether the requirement is fulfilled or not.\nIf there is <not fulfilled> mark behind the sentence, you must modify your answer again to fulfill the requirement, by appending a new ANSWER and CHECKING part.\n\ne.g. Question Answering Task Requirements: You need to do the Task Prompt for the following query and context.\nEnsure the response is written in the past tense.\n\nQUESTION:\n Who is Jack Chen?\n\nCONTEXTS:\n People saying that Jack Chen is a famous singer in China. \n\nANSWER: Jack Chen was a famous singer in China.\n\n CHECKING:\nQuestion Answering Task: You need to do the Task Prompt for the following query and context.<fulfilled>\nEnsure the response is written in the past tense.<fulfilled>\n\n\nHere is an example for this task:\n\ne.g. Question Answering Task Requirements: You need to do the Task Prompt for the following query and context.\nEnsure the response is written in the past tense.\n\nQUESTION:\n Who is Jack Chen?\n\nCONTEXTS:\n People saying that Jack Chen is a famous singer in China. \n\nANSWER: Jack Chen is a famous singer in China.\n CHECKING:\nQuestion Answering Task: You need to do the Task Prompt for the following query and context.<fulfilled>\nEnsure the response is written in the past tense.<not fulfilled>\nANSWER: Jack Chen was a famous singer in China.\nCHECKING:\nQuestion Answering Task: You need to do the Task Prompt for the following query and context.<fulfilled>\nEnsure the response is written in the past tense.<fulfilled>\n\n\nHere is the information of your task:\n\nQuestion Answering Task Requirements: You need to do the Task Prompt for the following query and context. {INSTRUCTION}\nI will give a question and several context texts about the question. Based on the given contexts, give an answer to the question. Your answer must not using any additional knowledge that is not mentioned in the given contexts. If the context is not sufficient to answer the question, please answer it with 'Not Provided' \n\nQUESTION:\n{query}\n\nCONTEXTS:\n{context}\n\nANSWER: \n";
const TASK_QA = "Question Answering Task: You need to do the Question Answering Tasks for the following query and context. \nI will give a question and several context texts about the question. Based on the given contexts, give an answer to the question. Your answer must not using any additional knowledge that is not mentioned in the given contexts. If the context is not sufficient to answer the question, please answer it with 'Not Provided' \n\nQUESTION:\n{query}\n\nCONTEXTS:\n{context}\n\nANSWER: \n";
const TASK_ASSIGNMENT_TEXT = "Trustworthy Question Answering Task: You need to utilize the ability learnt during both the Question Answering Task and Cognition Assessment Task. And only provide the answers which are sufficiently supported by the context, otherwise provide 'Not Provided'\n";
const LLAMA2_CHAT_WITH_ASSIGNMENT = "[INST] <<SYS>>\nA chat between a curious human and an artificial intelligence assistant. The assistant gives helpful, detailed, and polite answers to the human's questions.\n<</SYS>>\n\nUser:Trustworthy Question Answering Task: You need to utilize the ability learnt during both the Question Answering Task and Cognition Assessment Task. And only provide the answers which are sufficiently supported by the context, otherwise provide 'Not Provided'\nI will give a question and several context texts about the question. Based on the given contexts, give a informative answer to the question. Your answer must not using any additional knowledge that is not mentioned in the given contexts. If the context is not sufficient to answer the question, please answer it with 'Not Provided'\n\nQUESTION:\n{question}\n\nCONTEXTS:\n{context}\n\nANSWER: \n [/INST]";
// LLAMA2_VALIDATION is elided in paper.md; this is the seed's prompts.py text (c8c6666), rendered.
const LLAMA2_VALIDATION =
  "[INST] <<SYS>>\nA chat between a curious human and an artificial intelligence assistant. The assistant gives helpful, detailed, and polite answers to the human's questions.\n<</SYS>>\n\n" +
  "User:I will give a question and several context texts about the question. Based on the given contexts, give a informative answer to the question. Your answer must not using any additional knowledge that is not mentioned in the given contexts. If the context is not sufficient to answer the question, please answer it with 'Not Provided'An example answer is also provided. However, the answer could be wrong, you should identify the incorrect parts and ensure the correctness of your answer.\n\n" +
  "QUESTION:\n{question}\n\nCONTEXTS:\n{context}\n\nEXAMPLE ANSWER: \n{draft}\n\nCORRECT ANSWER: \n [/INST]";

const SYSTEM = "A chat between a curious human and an artificial intelligence assistant. The assistant gives helpful, detailed, and polite answers to the human's questions.";
const LLAMA2_CHAT = LLAMA2_CHAT_WITH_ASSIGNMENT.replace(TASK_ASSIGNMENT_TEXT, "");
/** The shared body of every evaluation wrapper: what follows "User:" in LLAMA2_CHAT, up to " [/INST]". */
const BODY = LLAMA2_CHAT.slice(LLAMA2_CHAT.indexOf("User:") + 5, LLAMA2_CHAT.length - " [/INST]".length);

test("TASK_COGNITION is byte-exact, leading spaces, 'contexts.If' and the trailing 'ANSWER: \\n' included", () => {
  const prompt = taskCognitionPrompt("{context}", "{query}");
  assert.equal(prompt, TASK_COGNITION);
  assert.ok(prompt.includes("given contexts.If the context"));
  assert.ok(prompt.includes("QUERY:\n {query}\nCONTEXT:\n {context}\n"));
  assert.ok(prompt.endsWith("ANSWER: \n"));
});

test("TASK_QA with no instruction is byte-exact, trailing spaces of the empty slots included", () => {
  assert.equal(taskQaPrompt("{context}", "{query}"), TASK_QA);
  assert.ok(TASK_QA.startsWith("Question Answering Task: You need to do the Question Answering Tasks for the following query and context. \n"));
});

test("TASK_PROMPT with the instruction in slot 0 is byte-exact", () => {
  assert.equal(taskPromptPrompt("{context}", "{query}", "{INSTRUCTION}", 0), TASK_PROMPT_SLOT0);
});

test("TASK_PROMPT slots 1-3 glue the next sentence to the instruction, slots 0 and 4 are followed by a line break", () => {
  const empty = taskPromptPrompt("{context}", "{query}", "", 0);
  const x = "Ensure the response is written in the past tense.";
  const expected: Record<InstructionSlot, [string, string]> = {
    0: ["for the following query and context. ", "\nI will give"],
    1: ["about the question. ", "Based on the given contexts"],
    2: ["give an answer to the question. ", "Your answer must not"],
    3: ["mentioned in the given contexts. ", "If the context is not sufficient"],
    4: ["answer it with 'Not Provided' ", "\n\nQUESTION:"],
  };
  for (const slot of [0, 1, 2, 3, 4] as InstructionSlot[]) {
    const prompt = taskPromptPrompt("{context}", "{query}", x, slot);
    const [before, after] = expected[slot];
    assert.ok(prompt.includes(before + x + after), `slot ${slot}`);
    // Exactly one insertion, and nothing else changes.
    assert.equal(prompt.length, empty.length + x.length);
    assert.equal(prompt.split(x).length, empty.split(x).length + 1); // the demonstrations' copies plus one
  }
});

test("the US-Tuning task assignment and LLAMA2_CHAT (with and without it) are byte-exact", () => {
  assert.equal(TASK_ASSIGNMENT, TASK_ASSIGNMENT_TEXT);
  assert.equal(llama2ChatPrompt("{question}", "{context}", TASK_ASSIGNMENT), LLAMA2_CHAT_WITH_ASSIGNMENT);
  assert.equal(llama2ChatPrompt("{question}", "{context}"), LLAMA2_CHAT);
  assert.ok(LLAMA2_CHAT.includes("User:I will give a question"));
});

test("the other evaluation wrappers put the same body in the wrappers paper.md gives", () => {
  assert.ok(BODY.startsWith("I will give a question") && BODY.endsWith("ANSWER: \n"));
  assert.equal(normalPrompt("{question}", "{context}"), BODY);
  assert.equal(mistralChatPrompt("{question}", "{context}"), "<s>[INST] " + BODY + " [/INST]");
  assert.equal(
    llama3ChatPrompt("{question}", "{context}"),
    "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n" + SYSTEM + "\n<|eot_id|>\n\n<|start_header_id|>user<|end_header_id|>\n\n" + BODY + "<|eot_id|>\n\n<|start_header_id|>assistant<|end_header_id|>\n\n",
  );
  assert.equal(
    gemmaChatPrompt("{question}", "{context}"),
    "<start_of_turn>user\nA chat between a curious human and an artificial intelligence assistant. You should give helpful, detailed, and polite answers to my questions.\n" + BODY + "<start_of_turn>model\n",
  );
  assert.equal(vicunaChatPrompt("{question}", "{context}"), SYSTEM + "\n\n### Human:\n" + BODY.replace("ANSWER: \n", "") + "### Assistant:\n");
  assert.equal(llama2ValidationPrompt("{question}", "{context}", "{draft}"), LLAMA2_VALIDATION);
  assert.equal(evalPrompt("mistral", "{question}", "{context}", TASK_ASSIGNMENT), "<s>[INST] " + TASK_ASSIGNMENT + BODY + " [/INST]");
});
