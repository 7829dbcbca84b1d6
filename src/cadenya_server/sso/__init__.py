"""SSO: connections to an account's OpenID Provider, and signing people in through them."""
