"""The REST API: decisions for systems, requests for people, reads for staff.

Views are thin: they validate with serializers, call services (the only writers)
and selectors, and shape the answer. See docs/api.md.
"""
