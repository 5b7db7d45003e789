// Package ipfix is MIRA's IPFIX codec (RFC 7011, RFC 6313 subTemplateList,
// RFC 5103 reverse elements, RFC 5655 files): the information-element
// registry, message/set/template encoding into caller buffers, the mapping
// between flow.Record and MIRA's flow templates, and a decoding Session that
// keeps the template and sequence-number state of one transport session.
//
// Hazards: the Append* functions and FlowEncoder append into caller-owned
// slices and never retain them. Session.Decode returns records whose
// Symptoms slices alias an arena owned by the Session; they are valid only
// until the next call to Decode. A Session is not safe for concurrent use.
// The codec never logs: malformed input is returned as a *DecodeError and
// counted in SessionStats by Reason.
package ipfix
