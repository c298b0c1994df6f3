"""Email delivery: the `EmailProvider` interface, the provider this service was generated
with (built by `app.email.factory.create_email_provider`), and the message templates."""
