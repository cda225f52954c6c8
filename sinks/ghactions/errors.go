package ghactions

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/bradleyfalzon/ghinstallation/v2"
	"github.com/cenkalti/backoff/v5"
	"github.com/google/go-github/v62/github"

	"github.com/rekeyhq/rekey/internal/secret"
)

// statusOf returns the HTTP status of a GitHub error, or 0.
func statusOf(err error) int {
	var er *github.ErrorResponse
	var rl *github.RateLimitError
	var ab *github.AbuseRateLimitError
	switch {
	case errors.As(err, &rl) && rl.Response != nil:
		return rl.Response.StatusCode
	case errors.As(err, &ab) && ab.Response != nil:
		return ab.Response.StatusCode
	case errors.As(err, &er) && er.Response != nil:
		return er.Response.StatusCode
	}
	return 0
}

func isRateLimit(err error) bool {
	var rl *github.RateLimitError
	var ab *github.AbuseRateLimitError
	return errors.As(err, &rl) || errors.As(err, &ab) || statusOf(err) == http.StatusTooManyRequests
}

// classify turns an error of a call on the sink's scope into rekey's terms:
// prefixed with the operation and the sink's name (scope and secret), with
// a hint for the operator, and marked permanent when repeating cannot help.
// value is scrubbed from the message, though GitHub never echoes it.
func (s *Sink) classify(op string, err error, value secret.Value) error {
	err = secret.Scrub(err, value)
	var hint string
	permanent := true
	var app *ghinstallation.HTTPError
	switch status := statusOf(err); {
	case errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("ghactions: %s %s: %w", op, s.name, err)
	case errors.As(err, &app):
		return s.appError(op, app, err)
	case isRateLimit(err):
		hint, permanent = "still rate limited by GitHub after waiting; try again later", false
	case status == http.StatusUnauthorized:
		hint = "GitHub rejected the credentials (token expired, revoked or mistyped)"
	case status == http.StatusForbidden:
		hint = s.forbiddenHint()
	case status == http.StatusNotFound:
		hint = s.notFoundHint()
	case status == http.StatusUnprocessableEntity:
		hint = "GitHub rejected the secret (its name, or a value sealed for a public key it no longer accepts)"
	case status >= 400 && status < 500 && status != http.StatusRequestTimeout:
		hint = "GitHub refused the request"
	default:
		hint, permanent = "GitHub could not be reached or failed", false
	}
	e := fmt.Errorf("ghactions: %s %s: %s: %w", op, s.name, hint, err)
	if permanent {
		return backoff.Permanent(e)
	}
	return e
}

// classifyLookup classifies a failed lookup of a repository the scope
// needs (the environment's repository, a selected repository).
func (s *Sink) classifyLookup(fullName, what string, err error) error {
	if statusOf(err) == http.StatusNotFound {
		return backoff.Permanent(fmt.Errorf("ghactions: resolve %s: %s %s not found, or the credentials cannot see it: %w",
			s.name, what, fullName, err))
	}
	return s.classify("resolve "+what+" "+fullName+" for", err, secret.Value{})
}

func (s *Sink) appError(op string, app *ghinstallation.HTTPError, err error) error {
	e := fmt.Errorf("ghactions: %s %s: minting a token for app %d installation %d: %w",
		op, s.name, s.cfg.App.AppID, s.cfg.App.InstallationID, err)
	if app.Response == nil {
		return e
	}
	switch app.Response.StatusCode {
	case http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound:
		return backoff.Permanent(fmt.Errorf("%w (check app.app_id, app.installation_id and app.private_key)", e))
	}
	return e
}

func (s *Sink) forbiddenHint() string {
	c := s.cfg
	switch {
	case c.Dependabot && c.Organization != "":
		return "the credentials may not manage this organization's Dependabot secrets (fine-grained: \"Dependabot secrets: read and write\" for the organization; classic: admin:org)"
	case c.Dependabot:
		return "the credentials may not manage this repository's Dependabot secrets (fine-grained: \"Dependabot secrets: read and write\"; classic: repo)"
	case c.Organization != "":
		return "the credentials may not manage this organization's secrets (fine-grained: \"Secrets: read and write\" for the organization; classic: admin:org)"
	case c.Environment != "":
		return "the credentials may not manage this environment's secrets (fine-grained: \"Environments: read and write\" and \"Metadata: read\" on the repository; classic: repo)"
	}
	return "the credentials may not manage this repository's secrets (fine-grained: \"Secrets: read and write\" on the repository; classic: repo)"
}

func (s *Sink) notFoundHint() string {
	c := s.cfg
	switch {
	case c.Organization != "":
		return fmt.Sprintf("organization %s not found, or the credentials cannot see it", c.Organization)
	case c.Environment != "":
		return fmt.Sprintf("environment %s of repository %s not found (create it under Settings > Environments), or the credentials cannot see it", c.Environment, c.Repository)
	}
	return fmt.Sprintf("repository %s not found, or the credentials cannot see it (GitHub answers 404 rather than 403 to tokens without access)", c.Repository)
}
