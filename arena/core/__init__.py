"""The facts everything else imports: the configuration registry, request validation, the
result schema, server limits, error wording, units, paths and the platform's facts."""
