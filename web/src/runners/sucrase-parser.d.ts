// The parts of sucrase's parser (shipped as plain modules without type paths of their own) that promises.ts reads.
declare module "sucrase/dist/esm/parser/index.js" {
  export interface Token {
    type: number;
    contextualKeyword: number;
    start: number;
    end: number;
  }
  export interface Scope {
    startTokenIndex: number;
    endTokenIndex: number;
    isFunctionScope: boolean;
  }
  export function parse(
    input: string,
    isJSXEnabled: boolean,
    isTypeScriptEnabled: boolean,
    isFlowEnabled: boolean,
  ): { tokens: Token[]; scopes: Scope[] };
}

declare module "sucrase/dist/esm/parser/tokenizer/types.js" {
  export const TokenType: {
    readonly name: number;
    readonly parenL: number;
    readonly parenR: number;
    readonly bracketL: number;
    readonly bracketR: number;
    readonly braceL: number;
    readonly braceR: number;
    readonly dollarBraceL: number;
    readonly arrow: number;
    readonly eq: number;
    readonly colon: number;
    readonly string: number;
    readonly star: number;
    readonly hash: number;
    readonly _function: number;
    readonly _new: number;
    readonly _async: number;
  };
}

declare module "sucrase/dist/esm/parser/tokenizer/keywords.js" {
  export const ContextualKeyword: { readonly _async: number };
}
