"""What reviewers look at, shared by dataset cards, run cards, the demo and notebooks:
contact sheets of samples and the markdown pieces the cards are made of."""
