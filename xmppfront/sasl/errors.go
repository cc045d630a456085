package sasl

import (
	"errors"
	"strings"
)

// Condition is a SASL failure condition of RFC 6120 §6.5: the name of the
// child element of <failure/>. A Condition is an error itself, so a
// CredentialLookup may return one (say AccountDisabled) and callers may
// test for one with errors.Is.
type Condition string

// The failure conditions of RFC 6120 §6.5.
const (
	Aborted              Condition = "aborted"
	AccountDisabled      Condition = "account-disabled"
	CredentialsExpired   Condition = "credentials-expired"
	EncryptionRequired   Condition = "encryption-required"
	IncorrectEncoding    Condition = "incorrect-encoding"
	InvalidAuthzid       Condition = "invalid-authzid"
	InvalidMechanism     Condition = "invalid-mechanism"
	MalformedRequest     Condition = "malformed-request"
	MechanismTooWeak     Condition = "mechanism-too-weak"
	NotAuthorized        Condition = "not-authorized"
	TemporaryAuthFailure Condition = "temporary-auth-failure"
)

func (c Condition) Error() string { return "sasl: " + string(c) }

// ErrUnknownUser is what a CredentialLookup returns (possibly wrapped) when
// the user does not exist. The server then carries on with made-up
// credentials and fails only at the end, exactly as for a wrong password,
// so the exchange does not tell whether the account exists.
var ErrUnknownUser = errors.New("sasl: unknown user")

// The server-error values of RFC 5802 §7 that this server sends.
const (
	errInvalidEncoding          = "invalid-encoding"
	errExtensionsNotSupported   = "extensions-not-supported"
	errInvalidProof             = "invalid-proof"
	errChannelBindingsDontMatch = "channel-bindings-dont-match"
	errServerDoesSupportCB      = "server-does-support-channel-binding"
	errCBNotSupported           = "channel-binding-not-supported"
	errUnsupportedCBType        = "unsupported-channel-binding-type"
	errInvalidUsernameEncoding  = "invalid-username-encoding"
	errOtherError               = "other-error"
)

// Error is a failed authentication. Condition and ServerError may be shown
// to the client; Err is the internal cause and is meant for logs only.
type Error struct {
	Condition Condition
	// ServerError is the RFC 5802 server-error value ("invalid-proof",
	// "channel-bindings-dont-match", …), empty for PLAIN and for failures
	// SCRAM has no word for. XMPP cannot carry SCRAM's server-final e=
	// message in <failure/>; put it in <text/> if it is useful at all.
	ServerError string
	Err         error
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("sasl: ")
	b.WriteString(string(e.Condition))
	if e.ServerError != "" {
		b.WriteString(" (e=")
		b.WriteString(e.ServerError)
		b.WriteString(")")
	}
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

// Unwrap exposes both the condition and the cause, so that
// errors.Is(err, NotAuthorized) and errors.Is(err, ErrUnknownUser) work.
func (e *Error) Unwrap() []error {
	if e.Err == nil {
		return []error{e.Condition}
	}
	return []error{e.Condition, e.Err}
}

// ConditionOf returns the failure condition to send for err: the one it
// carries, or temporary-auth-failure for anything else (a store that is
// down must not look like a wrong password). It returns "" for nil.
func ConditionOf(err error) Condition {
	if err == nil {
		return ""
	}
	var se *Error
	if errors.As(err, &se) {
		return se.Condition
	}
	var c Condition
	if errors.As(err, &c) {
		return c
	}
	return TemporaryAuthFailure
}

func fail(c Condition, serverError string, cause error) *Error {
	return &Error{Condition: c, ServerError: serverError, Err: cause}
}
