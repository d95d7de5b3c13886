"""How kanbench writes text: units with three significant digits, plain-text tables, strings made safe. No torch."""
