"""Feature builders: one pure Ibis function per behavioural family, plus point-in-time labels."""
