"""Tables and plots from result CSVs (``fkdverify report``)."""
