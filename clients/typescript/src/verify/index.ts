/**
 * The offline verifier: DSSE envelopes, bundles, trust root updates (docs/protocol.md), and the marketplace's
 * transparency formats, terms and grants (docs/marketplace.md).
 */
export { VerifyError } from "./errors.js";
export { parseJson, JsonError, JsonNumber, integerIn, type JsonValue, type JsonObject, type JsonProblem } from "./json.js";
export { parseTime, compareTime, type Instant } from "./time.js";
export { keyId, PublicKey, isStrictPublicKey, sha256Hex } from "./ed25519.js";
export {
  pae,
  parseEnvelope,
  verifyEnvelope,
  EnvelopeFormatError,
  STATEMENT_PAYLOAD_TYPE,
  type Envelope,
  type TrustedKey,
} from "./dsse.js";
export {
  verifyBundle,
  verifyStatementEnvelope,
  parseStatement,
  type BundleLimits,
  type BundleReport,
  type TrustPolicy,
} from "./bundle.js";
export { parseTrustRoot, verifyRootUpdate, keysFor, thresholdFor, type TrustRoot } from "./trustroot.js";
export { TarReader, type Chunks } from "./tar.js";
export { leafHash, nodeHash, rootFromLeaves, verifyInclusion, verifyConsistency, EMPTY_ROOT } from "./merkle.js";
export { parseEntry, encodeEntry, type Entry } from "./entries.js";
export { openNote, parseNote, type NoteVerifier, type NoteSignature, type SignedNote } from "./note.js";
export { parseCheckpoint, checkpointBody, type Checkpoint } from "./checkpoint.js";
export { verifyCosigned, verifyCosignature, checkCosignatures, cosignedMessage, type CosignatureResult } from "./cosignature.js";
export { parsePolicy, parseVkey, satisfied, quorumTime, PolicyError, type Policy, type Vkey } from "./policy.js";
export { parseTlogProof, verifyProof, type TlogProof, type ProofVerification, type Shortfall } from "./proof.js";
export { parseTerms, termsFromJson, permits, termsDigest, type Terms, type Permission, type Decision } from "./terms.js";
export { checkLicenseExpression } from "./spdx.js";
export { verifyGrant, readGrantStatement, isReleaseName, type Grant, type GrantVerification } from "./grants.js";
export { runVector, parseRequestJson, BadRequestError, type Outcome } from "./vectors.js";
