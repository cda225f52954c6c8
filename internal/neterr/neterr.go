// Package neterr classifies HTTP client errors that are local and
// permanent: retrying the same request can never succeed, so retry loops
// should stop at the first one.
package neterr

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"strings"
)

// Permanent reports whether err, or any error it wraps, is a local failure
// that no retry can fix:
//
//   - TLS verification of the server's certificate failed
//     (*tls.CertificateVerificationError, x509.UnknownAuthorityError,
//     x509.HostnameError, x509.CertificateInvalidError: unknown authority,
//     wrong host name, expired or otherwise unusable certificate);
//   - net/http refused to send a request whose header field name or value
//     is invalid (for example a configured header or token holding a
//     newline). net/http's message names the field, never its value.
//
// It says nothing about other errors; callers keep their own rules for
// timeouts, resets and status codes. A nil err is not permanent.
func Permanent(err error) bool {
	return TLSVerification(err) || InvalidHeader(err)
}

// TLSVerification reports whether err, or any error it wraps, is a failed
// verification of the server's certificate.
func TLSVerification(err error) bool {
	var (
		cve *tls.CertificateVerificationError
		uae x509.UnknownAuthorityError
		he  x509.HostnameError
		cie x509.CertificateInvalidError
	)
	return err != nil && (errors.As(err, &cve) || errors.As(err, &uae) || errors.As(err, &he) || errors.As(err, &cie))
}

// invalidHeader holds the starts of net/http's messages for a request it
// will not send: HTTP/1 ("net/http: invalid header field value for
// \"X-Api-Key\"", "net/http: invalid trailer …") and HTTP/2 ("invalid HTTP
// header field name …"). They are plain fmt errors, so the message is all
// there is to match.
var invalidHeader = []string{
	"net/http: invalid header field ",
	"net/http: invalid trailer field ",
	"invalid HTTP header field ",
	"invalid HTTP trailer field ",
}

// InvalidHeader reports whether err, or any error it wraps, is net/http
// refusing to send an invalid header field name or value. Only the start
// of each error in the chain is matched, so a server's message quoted
// inside another error does not count.
func InvalidHeader(err error) bool {
	for _, e := range chain(err) {
		msg := e.Error()
		for _, p := range invalidHeader {
			if strings.HasPrefix(msg, p) {
				return true
			}
		}
	}
	return false
}

// chain returns err and every error it wraps, depth first.
func chain(err error) []error {
	var out []error
	var walk func(error)
	walk = func(e error) {
		for e != nil {
			out = append(out, e)
			switch u := e.(type) {
			case interface{ Unwrap() []error }:
				for _, w := range u.Unwrap() {
					walk(w)
				}
				return
			case interface{ Unwrap() error }:
				e = u.Unwrap()
			default:
				return
			}
		}
	}
	walk(err)
	return out
}
