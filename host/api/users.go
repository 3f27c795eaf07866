package api

import (
	"errors"
	"math"
	"net/http"
	"net/mail"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gin-gonic/gin"

	"github.com/synchron-io/synchron/host/auth"
	"github.com/synchron-io/synchron/host/store"
)

const (
	maxNameChars  = 200
	maxEmailBytes = 254
)

// normalizeEmail lowercases and checks an email address.
func normalizeEmail(raw string) (string, error) {
	email := strings.ToLower(strings.TrimSpace(raw))
	if email == "" {
		return "", invalid("invalid_email", "email is required")
	}
	addr, err := mail.ParseAddress(email)
	if err != nil || addr.Address != email || len(email) > maxEmailBytes || !strings.Contains(email[strings.LastIndexByte(email, '@')+1:], ".") {
		return "", invalid("invalid_email", "email %q is not a valid address such as name@example.com", raw)
	}
	return email, nil
}

// cleanName trims a display name and checks its length.
func cleanName(field, raw string) (string, error) {
	name := strings.TrimSpace(raw)
	if name == "" {
		return "", invalid("invalid_"+field, "%s is required", field)
	}
	if utf8.RuneCountInString(name) > maxNameChars {
		return "", invalid("invalid_"+field, "%s is longer than %d characters", field, maxNameChars)
	}
	return name, nil
}

type signupRequest struct {
	Email    string `json:"email"`
	Password string `json:"password"`
	Name     string `json:"name"`
}

func (s *server) signup(c *gin.Context) error {
	var req signupRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	email, err := normalizeEmail(req.Email)
	if err != nil {
		return err
	}
	name, err := cleanName("name", req.Name)
	if err != nil {
		return err
	}
	hash, err := s.hasher.Hash(req.Password)
	var pe *auth.PasswordError
	if errors.As(err, &pe) {
		return invalid("invalid_password", "%s", pe.Reason)
	}
	if err != nil {
		return err
	}
	token, tokenHash, err := auth.NewToken()
	if err != nil {
		return err
	}
	now := s.now()
	acc, usr, _, err := s.store.Signup(c.Request.Context(), store.SignupParams{
		AccountName: name, Email: email, Name: name, PasswordHash: hash,
		TrialEndsAt: now.Add(store.TrialPeriod), SessionHash: tokenHash, SessionExpiresAt: now.Add(s.sessionTTL),
	})
	if errors.Is(err, store.ErrEmailTaken) {
		return errorf(http.StatusConflict, "email_taken", "an account with this email exists: log in, or reset your password")
	}
	if err != nil {
		return err
	}
	c.JSON(http.StatusCreated, gin.H{"user": viewUser(usr), "account": viewAccount(acc), "token": token})
	return nil
}

type loginRequest struct {
	Email    string `json:"email"`
	Password string `json:"password"`
}

func (s *server) login(c *gin.Context) error {
	var req loginRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	email := strings.ToLower(strings.TrimSpace(req.Email))
	if email == "" || req.Password == "" {
		return invalid("invalid_credentials", "email and password are required")
	}
	ctx := c.Request.Context()
	ip := c.ClientIP()
	now := s.now()
	until, err := s.store.LoginBlockedUntil(ctx, email, ip, s.perEmail, s.perIP, now)
	if err != nil {
		return err
	}
	if !until.IsZero() {
		wait := int(math.Ceil(until.Sub(now).Seconds()))
		if wait < 1 {
			wait = 1
		}
		c.Header("Retry-After", strconv.Itoa(wait))
		return errorf(http.StatusTooManyRequests, "too_many_attempts", "too many failed logins: try again in %d seconds, or reset your password", wait)
	}
	usr, err := s.store.UserByEmail(ctx, email)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	// An unknown email costs a bcrypt comparison too, so the answer's timing
	// does not tell which emails have accounts.
	if !s.hasher.Verify(usr.PasswordHash, req.Password) {
		if err := s.store.RecordLoginFailure(ctx, email, ip, now); err != nil {
			return err
		}
		return errorf(http.StatusUnauthorized, "invalid_credentials", "email or password is incorrect")
	}
	if err := s.store.ClearLoginFailures(ctx, email); err != nil {
		return err
	}
	token, tokenHash, err := auth.NewToken()
	if err != nil {
		return err
	}
	expires := now.Add(s.sessionTTL)
	if _, err := s.store.CreateToken(ctx, store.NewTokenParams{
		AccountID: usr.AccountID, UserID: usr.ID, Kind: store.TokenSession, Hash: tokenHash, ExpiresAt: &expires,
	}); err != nil {
		return err
	}
	c.JSON(http.StatusOK, gin.H{"token": token, "expires_at": expires.UTC()})
	return nil
}

func (s *server) logout(c *gin.Context) error {
	p := principal(c)
	err := s.store.RevokeToken(c.Request.Context(), p.Account.ID, p.User.ID, p.Token.ID, s.now())
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	c.Status(http.StatusNoContent)
	return nil
}

func (s *server) me(c *gin.Context) error {
	p := principal(c)
	c.JSON(http.StatusOK, gin.H{"user": viewUser(p.User), "account": viewAccount(p.Account), "role": p.User.Role})
	return nil
}

type createTokenRequest struct {
	Name      string     `json:"name"`
	ExpiresAt *time.Time `json:"expires_at"`
}

func (s *server) createToken(c *gin.Context) error {
	var req createTokenRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	name, err := cleanName("name", req.Name)
	if err != nil {
		return err
	}
	if req.ExpiresAt != nil && !req.ExpiresAt.After(s.now()) {
		return invalid("invalid_expires_at", "expires_at must be in the future (or omitted for a token that does not expire)")
	}
	token, hash, err := auth.NewToken()
	if err != nil {
		return err
	}
	p := principal(c)
	t, err := s.store.CreateToken(c.Request.Context(), store.NewTokenParams{
		AccountID: p.Account.ID, UserID: p.User.ID, Kind: store.TokenAPI, Name: name, Hash: hash, ExpiresAt: req.ExpiresAt,
	})
	if err != nil {
		return err
	}
	v := viewToken(t)
	v.Token = token
	c.JSON(http.StatusCreated, v)
	return nil
}

func (s *server) listTokens(c *gin.Context) error {
	opts, err := listOptions(c)
	if err != nil {
		return err
	}
	p := principal(c)
	ts, next, err := s.store.ListTokens(c.Request.Context(), p.Account.ID, p.User.ID, store.TokenAPI, opts)
	if err != nil {
		return listError(err)
	}
	c.JSON(http.StatusOK, list(mapSlice(ts, viewToken), next))
	return nil
}

func (s *server) deleteToken(c *gin.Context) error {
	p := principal(c)
	id := c.Param("id")
	err := s.store.RevokeToken(c.Request.Context(), p.Account.ID, p.User.ID, id, s.now())
	if errors.Is(err, store.ErrNotFound) {
		return notFound("token", id)
	}
	if err != nil {
		return err
	}
	c.Status(http.StatusNoContent)
	return nil
}
