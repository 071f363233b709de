"""edgegen's command line: the only package that imports click.

Every command is a thin click wrapper in a module of its own; it builds library objects
(a Generator, runners, an export config) and prints what they return. Nothing imports this
package: the libraries never depend on their command line.
"""
