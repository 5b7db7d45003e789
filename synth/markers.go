package synth

// Marker is a byte string the generator plants on purpose as one
// occurrence of a symptom. Truth counts planted markers per flow; the
// symptom matcher is expected to find at least these (its own patterns may
// match more of the surrounding protocol text).
type Marker struct {
	Symptom string
	Text    string
}

// Marker indexes into markerTable.
const (
	mkEHLO = iota
	mkMailFrom
	mkRcptTo
	mkHTTP
	mkFTPPass
	mkFTPRetr
	mkFTPPasv
	mkFTPPasvReply
	mkFTPPort
	mkBitTorrent
	mkDHTQuery
	mkDHTReply
	mkEd2kHello
	mkEd2kHelloAnswer
	mkGnutella
	mkMP3Name
	mkID3
	mkMP4Name
	mkFtyp
	mkExeName
	mkDOSStub
	mkGetInfo
	mkInfoResponse
	mkGetStatus
	mkStatusResponse
	mkPrivmsg
	mkClientHello
	mkServerHello
	mkSSH
	mkDNSQuery
	mkDNSResponse
	numMarkers
)

// markerTable lists every planted marker. The eDonkey, TLS and DNS markers
// are fixed header bytes of messages the generator always builds with the
// same length and flags.
var markerTable = [numMarkers]Marker{
	mkEHLO:            {"MAIL", "EHLO "},
	mkMailFrom:        {"MAIL", "MAIL FROM:"},
	mkRcptTo:          {"MAIL", "RCPT TO:"},
	mkHTTP:            {"WEB", "HTTP/1.1"},
	mkFTPPass:         {"FTP", "PASS "},
	mkFTPRetr:         {"FTP", "RETR "},
	mkFTPPasv:         {"FTP", "PASV\r\n"},
	mkFTPPasvReply:    {"FTP", "227 Entering Passive Mode"},
	mkFTPPort:         {"FTP", "PORT "},
	mkBitTorrent:      {"P2P", "\x13BitTorrent protocol"},
	mkDHTQuery:        {"P2P", "d1:ad2:id20:"},
	mkDHTReply:        {"P2P", "d1:rd2:id20:"},
	mkEd2kHello:       {"P2P", "\xe3\x38\x00\x00\x00\x01\x10"},
	mkEd2kHelloAnswer: {"P2P", "\xe3\x37\x00\x00\x00\x4c"},
	mkGnutella:        {"P2P", "GNUTELLA"},
	mkMP3Name:         {"MP3", ".mp3"},
	mkID3:             {"MP3", "ID3\x03\x00"},
	mkMP4Name:         {"VIDEO", ".mp4"},
	mkFtyp:            {"VIDEO", "ftypisom"},
	mkExeName:         {"EXECUTABLE", ".exe"},
	mkDOSStub:         {"EXECUTABLE", "This program cannot be run in DOS mode"},
	mkGetInfo:         {"GAMES", "\xff\xff\xff\xffgetinfo"},
	mkInfoResponse:    {"GAMES", "\xff\xff\xff\xffinfoResponse"},
	mkGetStatus:       {"GAMES", "\xff\xff\xff\xffgetstatus"},
	mkStatusResponse:  {"GAMES", "\xff\xff\xff\xffstatusResponse"},
	mkPrivmsg:         {"CHAT", "PRIVMSG "},
	mkClientHello:     {"TLS", "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"},
	mkServerHello:     {"TLS", "\x16\x03\x03\x00\x7a\x02\x00\x00\x76\x03\x03"},
	mkSSH:             {"SSH", "SSH-2.0-"},
	mkDNSQuery:        {"DNS", "\x01\x00\x00\x01\x00\x00\x00\x00"},
	mkDNSResponse:     {"DNS", "\x81\x80\x00\x01\x00"},
}

// Markers returns the planted markers: what the truth's symptom counts
// count. The slice is a copy.
func Markers() []Marker {
	out := make([]Marker, len(markerTable))
	copy(out, markerTable[:])
	return out
}
