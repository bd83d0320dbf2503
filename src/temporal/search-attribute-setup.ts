/**
 * `ratchet setup`: registers Ratchet's typed search attributes on a namespace of any cluster
 * through the OperatorService. Registering twice changes nothing; an attribute that exists with
 * another type is an error that names it (Temporal cannot change a type in place).
 */
import type { Connection } from '@temporalio/client';
import proto from '@temporalio/proto';
import { RatchetError } from '../client.js';
import { searchAttributeDefinitions } from '../shared/api/search-attributes.js';

const IndexedValueType = proto.temporal.api.enums.v1.IndexedValueType;
type IndexedValueType = proto.temporal.api.enums.v1.IndexedValueType;

const indexedType: Record<'Keyword' | 'Int', IndexedValueType> = {
  Keyword: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
  Int: IndexedValueType.INDEXED_VALUE_TYPE_INT,
};

/** "Keyword", "Int", … as the temporal CLI spells a type. */
function typeName(type: IndexedValueType | null | undefined): string {
  const name = type === undefined || type === null ? undefined : IndexedValueType[type];
  if (!name) return 'unknown';
  const word = name.replace('INDEXED_VALUE_TYPE_', '').toLowerCase();
  return word === 'keyword_list' ? 'KeywordList' : word.charAt(0).toUpperCase() + word.slice(1);
}

export interface SetupResult {
  namespace: string;
  /** Attributes this call registered. */
  added: string[];
  /** Attributes that were already there with the right type. */
  present: string[];
}

/** gRPC status code of a failed call, when it has one. */
function grpcCode(err: unknown): number | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'number' ? code : undefined;
}

function operatorError(action: string, namespace: string, err: unknown): RatchetError {
  const message = err instanceof Error ? err.message : String(err);
  const code = grpcCode(err);
  // 7 PERMISSION_DENIED, 12 UNIMPLEMENTED: Temporal Cloud manages search attributes itself.
  const hint =
    code === 7 || code === 12
      ? ' (on Temporal Cloud, add them with `tcld namespace search-attributes add` or in the Cloud UI)'
      : '';
  return new RatchetError(`cannot ${action} search attributes of namespace ${namespace}: ${message}${hint}`);
}

export async function registerSearchAttributes(
  connection: Pick<Connection, 'operatorService'>,
  namespace: string,
): Promise<SetupResult> {
  let custom: Record<string, IndexedValueType>;
  try {
    const listed = await connection.operatorService.listSearchAttributes({ namespace });
    custom = listed.customAttributes ?? {};
  } catch (err) {
    throw operatorError('list the', namespace, err);
  }

  const missing: Record<string, IndexedValueType> = {};
  const present: string[] = [];
  const clashes: string[] = [];
  for (const [name, type] of Object.entries(searchAttributeDefinitions)) {
    const existing = custom[name];
    if (existing === undefined) missing[name] = indexedType[type];
    else if (existing === indexedType[type]) present.push(name);
    else clashes.push(`${name} is ${typeName(existing)}, Ratchet needs ${type}`);
  }
  if (clashes.length > 0) {
    throw new RatchetError(
      `namespace ${namespace} already has search attributes of another type: ${clashes.join('; ')}. ` +
        'Remove them (temporal operator search-attribute remove) or use another namespace.',
    );
  }
  const added = Object.keys(missing);
  if (added.length > 0) {
    try {
      await connection.operatorService.addSearchAttributes({ namespace, searchAttributes: missing });
    } catch (err) {
      // Another `ratchet setup` may have added them meanwhile: fine if they are there now.
      const again = await connection.operatorService.listSearchAttributes({ namespace }).catch(() => null);
      const now = again?.customAttributes ?? {};
      if (!Object.entries(missing).every(([name, type]) => now[name] === type)) {
        throw operatorError('add', namespace, err);
      }
    }
  }
  return { namespace, added, present };
}
