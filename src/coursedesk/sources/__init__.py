"""The tables the bot writes: bookings, events, free-lesson registrations, courses."""
