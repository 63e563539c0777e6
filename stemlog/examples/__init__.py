"""Example workflows: the seed's two (``approvals``, ``billing``) and a loop.

Importable after any install, so ``stemlog demo`` runs them and ``stemlog
worker stemlog.examples.app:app`` can serve them.
"""
