/**
 * Transcript items: the subset of the OpenAI Responses API input items that a session keeps.
 *
 * They are plain JSON so that the workflow can hold them, Temporal can record them and the model
 * activity can send them back to the model unchanged. Item kinds the session does not interpret
 * (reasoning, compaction) are kept opaque and passed through.
 */

export interface InputText {
  type: 'input_text';
  text: string;
}

export interface OutputText {
  type: 'output_text';
  text: string;
}

export interface MessageItem {
  type: 'message';
  role: 'user' | 'developer' | 'assistant' | 'system';
  content: Array<InputText | OutputText>;
  id?: string;
  status?: string;
}

export interface FunctionCallItem {
  type: 'function_call';
  call_id: string;
  name: string;
  /** JSON text, exactly as the model produced it. */
  arguments: string;
  id?: string;
  status?: string;
}

export interface FunctionCallOutputItem {
  type: 'function_call_output';
  call_id: string;
  output: string;
}

/** Reasoning, compaction and any other item the session passes through without reading. */
export interface OpaqueItem {
  type: 'reasoning' | 'compaction';
  [key: string]: unknown;
}

export type TranscriptItem = MessageItem | FunctionCallItem | FunctionCallOutputItem | OpaqueItem;

export function userMessage(text: string): MessageItem {
  return { type: 'message', role: 'user', content: [{ type: 'input_text', text }] };
}

export function assistantMessage(text: string): MessageItem {
  return { type: 'message', role: 'assistant', content: [{ type: 'output_text', text }] };
}

export function functionOutput(callId: string, output: string): FunctionCallOutputItem {
  return { type: 'function_call_output', call_id: callId, output };
}

/** The text of a message item (all its text parts joined); '' for other items. */
export function messageText(item: TranscriptItem): string {
  if (item.type !== 'message') return '';
  return item.content.map((part) => part.text).join('');
}

export function isFunctionCall(item: TranscriptItem): item is FunctionCallItem {
  return item.type === 'function_call';
}
