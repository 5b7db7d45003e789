// Package appmeta extracts what a flow is about from its first payload
// bytes: the HTTP Host header, the TLS server name (SNI) and ALPN list of
// a ClientHello, the same from a QUIC client Initial (decrypted with the
// version's published initial keys, RFC 9001 §5.2, RFC 9369 §3.3), and a
// DNS message's query name and response code.
//
// The parsers read only the bytes given, never beyond, allocate nothing
// (QUIC decryption apart, once per flow) and write what they find into a
// fixed-size Found; a name is kept only when every byte of it is a
// hostname character, so a Found's name is a hostname or empty.
package appmeta
