"""bpy-free parts of the add-on: conversion, settings, job tracking, backend session.

Everything here runs under a plain Python (tests, the headless script) as well as
inside Blender; nothing here imports ``bpy``.
"""
