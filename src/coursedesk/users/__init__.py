"""Students: the list, search, the 360° view and edits of their bookings."""
