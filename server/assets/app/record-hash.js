// The completion record's hash, exactly as sync-protocol computes it
// (`CompletionRecord::record_hash`, docs/protocol.md section 4.5): SHA-256
// of serde_json's compact form, members in declaration order. The owner's
// signature names the record by this hash, so the two must agree byte for
// byte; a browser test checks this file against the golden vectors in
// sync-protocol/tests/golden/completion_record_hashes.json.

/// The record's canonical JSON. Member order is fixed here, not taken from
/// the object given; JSON.stringify escapes strings as serde_json does
/// (`"`, `\`, the short escapes, `\u00xx` in lowercase hex, nothing else).
export function canonicalRecord(record) {
  const materials = (record.materials || []).map(
    (material) => `{"name":${JSON.stringify(material.name)},"quantity":${JSON.stringify(material.quantity)}}`,
  );
  const charge =
    record.charge.type === "paid"
      ? `{"type":"paid","fee_fen":${integer(record.charge.fee_fen)}}`
      : `{"type":"free"}`;
  return `{"work_done":${JSON.stringify(record.work_done)},"materials":[${materials.join(",")}],"charge":${charge}}`;
}

/// SHA-256 of `bytes` in lowercase hex. Web Crypto exists only in a secure
/// context (HTTPS or localhost), which the app needs for offline work anyway.
export async function sha256Hex(bytes) {
  const digest = await crypto.subtle.digest("SHA-256", bytes);
  return Array.from(new Uint8Array(digest), (byte) => byte.toString(16).padStart(2, "0")).join("");
}

export function recordHash(record) {
  return sha256Hex(new TextEncoder().encode(canonicalRecord(record)));
}

function integer(value) {
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new RangeError(`a fee in fen is a whole number ≥ 0, not ${value}`);
  }
  return String(value);
}
