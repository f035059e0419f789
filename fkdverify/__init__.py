"""fkdverify: is a knowledge-distilled student faithful to its teacher around real data?"""

__version__ = "0.1.0"
