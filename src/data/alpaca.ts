/** An Alpaca-format record, the input format of LLaMA-Factory SFT (instruction + "\n" + input -> output). */
export interface AlpacaRow {
  instruction: string;
  input: string;
  output: string;
}

/** Strips builder metadata so that the exported files hold exactly the Alpaca keys. */
export const toAlpaca = (rows: readonly AlpacaRow[]): AlpacaRow[] => rows.map(({ instruction, input, output }) => ({ instruction, input, output }));
