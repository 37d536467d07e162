/**
 * Every prompt template of the paper, byte-exact to the authors' prompts.py (docs/paper.md §1.2,
 * §1.3, §3.1). Training prompts (TASK_COGNITION, TASK_QA, TASK_PROMPT) and the evaluation wrappers
 * (LLAMA2_CHAT, NORMAL, MISTRAL_CHAT, LLAMA3_CHAT, GEMMA_CHAT, VICUNA_CHAT, LLAMA2_VALIDATION)
 * live here together so that the evaluation code renders exactly what training saw.
 *
 * Quirks kept on purpose: the leading spaces before the query/context in TASK_COGNITION,
 * "contexts.If" with no space, "ANSWER: \n" with a trailing space, "give a informative answer",
 * and the empty instruction slots of TASK_QA leaving trailing spaces.
 */

/** The five places get_task_prompt can put a causal instruction (index 0..4). */
export type InstructionSlot = 0 | 1 | 2 | 3 | 4;
export const INSTRUCTION_SLOTS: readonly InstructionSlot[] = [0, 1, 2, 3, 4];

export function taskCognitionPrompt(context: string, query: string): string {
  return (
    "Cognition Assessment Task: You need to do the Cognition Assessment Task for the following query and context. " +
    "I will give a query and a related context about the query. " +
    "Your task is to judge whether the context is sufficient to answer the query. " +
    "You must append either '<Sufficient>' or '<Insufficient>' after your answer. " +
    "Your answer must not using any additional knowledge that is not mentioned in the given contexts." +
    "If the context is not sufficient to answer the question, please append the '<Insufficient>' after your answer.\n\n" +
    "Here is the example.\n\n QUERY:\n What happened to Jay Chou when he got old?\n" +
    "CONTEXT:\n Jay Chou was the most famous singer in China when he was young, " +
    "releasing many nostalgic albums and songs that are memorable to middle-aged people today.\n" +
    "ANSWER: \nJay Chou was the most famous singer in China.<Insufficient>\n\n" +
    "Here is one query that you need to accomplish, you should only output one answer to it, and stop generating more queries:\n\n" +
    `QUERY:\n ${query}\n` +
    `CONTEXT:\n ${context}\n` +
    "ANSWER: \n"
  );
}

/** The five slots, with `instruction` placed in `slot` and the others empty, as get_task_prompt does. */
function slots(instruction: string, slot: InstructionSlot): string[] {
  const s = ["", "", "", "", ""];
  s[slot] = instruction;
  return s;
}

/** The shared body of TASK_QA and TASK_PROMPT after their first sentence. Slots 1-3 have no following space. */
function qaBody(s: string[], query: string, context: string): string {
  return (
    `I will give a question and several context texts about the question. ${s[1]}` +
    `Based on the given contexts, give an answer to the question. ${s[2]}` +
    `Your answer must not using any additional knowledge that is not mentioned in the given contexts. ${s[3]}` +
    `If the context is not sufficient to answer the question, please answer it with 'Not Provided' ${s[4]}\n\n` +
    "QUESTION:\n" +
    `${query}\n\n` +
    "CONTEXTS:\n" +
    `${context}\n\n` +
    "ANSWER: \n"
  );
}

/** TASK_QA. The seed never passes an instruction here, so every slot is empty by default. */
export function taskQaPrompt(context: string, query: string, instruction = "", slot: InstructionSlot = 0): string {
  const s = slots(instruction, slot);
  return `Question Answering Task: You need to do the Question Answering Tasks for the following query and context. ${s[0]}\n` + qaBody(s, query, context);
}

/** The sentence the CHECKING demonstration marks first (note: "Task:" not "Task Requirements:"). */
export const TASK_PROMPT_CHECK_SENTENCE = "Question Answering Task: You need to do the Task Prompt for the following query and context.";

const TASK_PROMPT_PREAMBLE =
  "You should check whether your answer aligned the requirement by generating a Checking part, checking each sentence of the above instruction, " +
  "with either <fulfilled> or <not fulfilled> mark behind the sentence, indicating whether the requirement is fulfilled or not.\n" +
  "If there is <not fulfilled> mark behind the sentence, you must modify your answer again to fulfill the requirement, by appending a new ANSWER and CHECKING part.\n\n" +
  "e.g. Question Answering Task Requirements: You need to do the Task Prompt for the following query and context.\nEnsure the response is written in the past tense.\n\n" +
  "QUESTION:\n Who is Jack Chen?\n\nCONTEXTS:\n People saying that Jack Chen is a famous singer in China. \n\nANSWER: Jack Chen was a famous singer in China.\n\n " +
  "CHECKING:\nQuestion Answering Task: You need to do the Task Prompt for the following query and context.<fulfilled>\nEnsure the response is written in the past tense.<fulfilled>\n\n\n" +
  "Here is an example for this task:\n\n" +
  "e.g. Question Answering Task Requirements: You need to do the Task Prompt for the following query and context.\nEnsure the response is written in the past tense.\n\n" +
  "QUESTION:\n Who is Jack Chen?\n\nCONTEXTS:\n People saying that Jack Chen is a famous singer in China. \n\nANSWER: Jack Chen is a famous singer in China.\n " +
  "CHECKING:\nQuestion Answering Task: You need to do the Task Prompt for the following query and context.<fulfilled>\nEnsure the response is written in the past tense.<not fulfilled>\n" +
  "ANSWER: Jack Chen was a famous singer in China.\n" +
  "CHECKING:\nQuestion Answering Task: You need to do the Task Prompt for the following query and context.<fulfilled>\nEnsure the response is written in the past tense.<fulfilled>\n\n\n" +
  "Here is the information of your task:\n\n";

/** TASK_PROMPT: the stage-2 prompt with a causal instruction in one of the five slots. */
export function taskPromptPrompt(context: string, query: string, instruction: string, slot: InstructionSlot): string {
  const s = slots(instruction, slot);
  return (
    TASK_PROMPT_PREAMBLE +
    `Question Answering Task Requirements: You need to do the Task Prompt for the following query and context. ${s[0]}\n` +
    qaBody(s, query, context)
  );
}

/** System message of the seed's ask_gpt (OpenAI chat, temperature 0). */
export const GPT_SYSTEM_MESSAGE = "You need to accomplish the provided task without outputting any other content.";

/** The US-Tuning task assignment prepended after "User:" for the tuned models (paper.md §3.1). */
export const TASK_ASSIGNMENT =
  "Trustworthy Question Answering Task: You need to utilize the ability learnt during both the Question Answering Task and Cognition Assessment Task. " +
  "And only provide the answers which are sufficiently supported by the context, otherwise provide 'Not Provided'\n";

/** Per-model alternatives for the last sentence, found only as comments in the seed. */
export const TASK_ASSIGNMENT_LLAMA3 =
  "Trustworthy Question Answering Task: You need to utilize the ability learnt during both the Question Answering Task and Cognition Assessment Task. " +
  "And provide 'Not Provided' when the context is insufficient\n";
export const TASK_ASSIGNMENT_GEMMA2 =
  "Trustworthy Question Answering Task: You need to utilize the ability learnt during both the Question Answering Task and Cognition Assessment Task. " +
  "You should look into the tiny difference between the query and context, and answer as much as you can, while providing 'Not Provided' for answers which are insufficiently supported by the context\n";

const CHAT_SYSTEM = "A chat between a curious human and an artificial intelligence assistant. The assistant gives helpful, detailed, and polite answers to the human's questions.";

const EVAL_INSTRUCTION =
  "I will give a question and several context texts about the question. " +
  "Based on the given contexts, give a informative answer to the question. " +
  "Your answer must not using any additional knowledge that is not mentioned in the given contexts. " +
  "If the context is not sufficient to answer the question, please answer it with 'Not Provided'";

const evalBody = (question: string, context: string): string =>
  `${EVAL_INSTRUCTION}\n\nQUESTION:\n${question}\n\nCONTEXTS:\n${context}\n\nANSWER: \n`;

/** The evaluation prompt versions of get_citation_prompt used by the benchmark (paper.md §3.1). */
export type EvalPromptVersion = "normal" | "llama2_chat" | "mistral" | "llama3_chat" | "gemma_chat" | "vicuna_chat";
export const EVAL_PROMPT_VERSIONS: readonly EvalPromptVersion[] = ["normal", "llama2_chat", "mistral", "llama3_chat", "gemma_chat", "vicuna_chat"];

/** NORMAL: the body only (GPT models). */
export const normalPrompt = (question: string, context: string, taskAssignment = ""): string => taskAssignment + evalBody(question, context);

/** LLAMA2_CHAT; pass TASK_ASSIGNMENT for the US-Tuning models. */
export const llama2ChatPrompt = (question: string, context: string, taskAssignment = ""): string =>
  `[INST] <<SYS>>\n${CHAT_SYSTEM}\n<</SYS>>\n\nUser:${taskAssignment}${evalBody(question, context)} [/INST]`;

export const mistralChatPrompt = (question: string, context: string, taskAssignment = ""): string =>
  `<s>[INST] ${taskAssignment}${evalBody(question, context)} [/INST]`;

export const llama3ChatPrompt = (question: string, context: string, taskAssignment = ""): string =>
  "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n" +
  `${CHAT_SYSTEM}\n<|eot_id|>\n\n<|start_header_id|>user<|end_header_id|>\n\n` +
  `${taskAssignment}${evalBody(question, context)}<|eot_id|>\n\n<|start_header_id|>assistant<|end_header_id|>\n\n`;

export const gemmaChatPrompt = (question: string, context: string, taskAssignment = ""): string =>
  "<start_of_turn>user\nA chat between a curious human and an artificial intelligence assistant. You should give helpful, detailed, and polite answers to my questions.\n" +
  `${taskAssignment}${evalBody(question, context)}<start_of_turn>model\n`;

/** VICUNA_CHAT: the task assignment goes before the system text, and there is no "ANSWER:" line. */
export const vicunaChatPrompt = (question: string, context: string, taskAssignment = ""): string =>
  `${taskAssignment}${CHAT_SYSTEM}\n\n### Human:\n${EVAL_INSTRUCTION}\n\nQUESTION:\n${question}\n\nCONTEXTS:\n${context}\n\n### Assistant:\n`;

/** LLAMA2_VALIDATION: the self-validation second pass ("'Not Provided'An example" has no space, as in the seed). */
export const llama2ValidationPrompt = (question: string, context: string, draftAnswer: string, taskAssignment = ""): string =>
  `[INST] <<SYS>>\n${CHAT_SYSTEM}\n<</SYS>>\n\nUser:${taskAssignment}${EVAL_INSTRUCTION}` +
  "An example answer is also provided. However, the answer could be wrong, you should identify the incorrect parts and ensure the correctness of your answer.\n\n" +
  `QUESTION:\n${question}\n\nCONTEXTS:\n${context}\n\nEXAMPLE ANSWER: \n${draftAnswer}\n\nCORRECT ANSWER: \n [/INST]`;

/** Renders an evaluation prompt by version name (the seed's model_prompt_map values). */
export function evalPrompt(version: EvalPromptVersion, question: string, context: string, taskAssignment = ""): string {
  switch (version) {
    case "normal":
      return normalPrompt(question, context, taskAssignment);
    case "llama2_chat":
      return llama2ChatPrompt(question, context, taskAssignment);
    case "mistral":
      return mistralChatPrompt(question, context, taskAssignment);
    case "llama3_chat":
      return llama3ChatPrompt(question, context, taskAssignment);
    case "gemma_chat":
      return gemmaChatPrompt(question, context, taskAssignment);
    case "vicuna_chat":
      return vicunaChatPrompt(question, context, taskAssignment);
  }
}
