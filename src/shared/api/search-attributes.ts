/**
 * Typed search attributes that make sessions findable in the Temporal Web UI and with
 * `ratchet list`, e.g. `RatchetStatus = "awaiting_approval"`.
 */
import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';

export const RatchetStatus = defineSearchAttributeKey('RatchetStatus', SearchAttributeType.KEYWORD);
export const RatchetRepo = defineSearchAttributeKey('RatchetRepo', SearchAttributeType.KEYWORD);
export const RatchetPendingApprovals = defineSearchAttributeKey(
  'RatchetPendingApprovals',
  SearchAttributeType.INT,
);
export const RatchetTurn = defineSearchAttributeKey('RatchetTurn', SearchAttributeType.INT);
/** On a child session: its parent's id (`RatchetParent = "<id>"` finds a session's children). */
export const RatchetParent = defineSearchAttributeKey('RatchetParent', SearchAttributeType.KEYWORD);

/** Name → type as the `temporal` CLI's `--search-attribute Name=Type` flag spells it. */
export const searchAttributeDefinitions: Readonly<Record<string, 'Keyword' | 'Int'>> = {
  [RatchetStatus.name]: 'Keyword',
  [RatchetRepo.name]: 'Keyword',
  [RatchetPendingApprovals.name]: 'Int',
  [RatchetTurn.name]: 'Int',
  [RatchetParent.name]: 'Keyword',
};
