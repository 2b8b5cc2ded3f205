def test_probe(accounts, chain, token):
    print("N", len(accounts))
    for i in (10, 11, 12, 15):
        a = accounts[i]
        print(i, a.address, a.balance)
    print(token.ECDSAInvalidSignature, token.ERC20InvalidCap)
    assert 0
